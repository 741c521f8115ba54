#!/usr/bin/env python3
"""Prints the effective value of one text key of the T.A.R.S. configuration, resolved as `tars`
resolves it (crates/tars-server/src/config/mod.rs), without building `tars`: the key's
TARS_* variable, else the file (TARS_CONFIG, else ./tars.toml when it exists), else the
default. An empty data_dir is $XDG_DATA_HOME/tars, else ~/.local/share/tars. An empty
database_url is sqlite://<data_dir>/tars.db. Command-line flags are not seen here.
Secrets come out unmasked: this is what `make db-shell` and `make redis-shell` connect with.

    scripts/config_value.py database_url
    scripts/config_value.py redis_url
"""
import os
import sys
import tomllib

DEFAULTS = {"data_dir": "", "database_url": "", "redis_url": "", "redis_prefix": "tars",
            "nats_url": "", "nats_prefix": "tars"}


def file_values():
    path = os.environ.get("TARS_CONFIG") or ("tars.toml" if os.path.exists("tars.toml") else None)
    if path is None:
        return {}
    with open(path, "rb") as f:
        table = tomllib.load(f)
    return {k: str(v) for k, v in table.items() if not isinstance(v, dict)}


def value(key, file):
    env = os.environ.get("TARS_" + key.upper())
    if env is not None:
        return env
    return file.get(key, DEFAULTS[key])


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in DEFAULTS:
        sys.exit(f"usage: {sys.argv[0]} {'|'.join(DEFAULTS)}")
    key = sys.argv[1]
    file = file_values()
    data_dir = value("data_dir", file)
    if not data_dir:
        xdg = os.environ.get("XDG_DATA_HOME")
        base = xdg if xdg else os.path.join(os.environ.get("HOME", "."), ".local/share")
        data_dir = os.path.join(base, "tars")
    if key == "data_dir":
        print(data_dir)
    elif key == "database_url":
        print(value(key, file) or "sqlite://" + os.path.join(data_dir, "tars.db"))
    else:
        print(value(key, file))


if __name__ == "__main__":
    main()
