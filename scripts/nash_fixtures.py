"""Generate nashpy reference equilibria for T.A.R.S.'s Nash solvers (crates/tars-nash).

Writes `crates/tars-nash/tests/fixtures/vertex_enumeration.json`:

    {"generator": "...", "nashpy": "0.0.43", "numpy": "...", "seed": int,
     "games": [{"name": str, "A": [[...]], "B": [[...]],
                "equilibria": [{"row": [...], "col": [...]}],
                "support_enumeration_count": int | null}]}

Equilibria come from nashpy's `vertex_enumeration` (complete for non-degenerate games; for a
degenerate game it gives the extreme equilibria), deduplicated to 1e-9. nashpy's
`support_enumeration` is recorded only as a count, for games up to 5x5, to show what it misses;
it is not used as a reference. Random games have payoffs uniform in (-10, 10) from a seeded
numpy generator; floats are written with Python's repr-based json, so they round-trip exactly.
The classic games are matching pennies, prisoner's dilemma, battle of the sexes,
rock-paper-scissors and a degenerate game with a continuum of equilibria. Ties, and mostly
degenerate games, come from 30 seeded random 2x2 to 4x4 games with integer payoffs in
{1, 2, 3}: positive,
because nashpy 0.0.43 shifts payoffs only when one is negative, and with a zero payoff its
polytopes can be unbounded and qhull loses vertices (extreme equilibria go missing).

Usage (from the repository root):

    python3 -m venv scripts/.venv
    scripts/.venv/bin/pip install -r scripts/requirements-nash.txt
    scripts/.venv/bin/python scripts/nash_fixtures.py [--out PATH]   # about two minutes
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import nashpy
import numpy as np

SEED = 20_260_611
PINNED = {"nashpy": "0.0.43"}  # keep in sync with scripts/requirements-nash.txt
# (size, number of games): 8x8 vertex enumeration takes about 12 s per game in nashpy.
RANDOM_SIZES = [(3, 40), (5, 30), (8, 6)]
N_INTEGER = 30
SUPPORT_ENUMERATION_MAX_SIZE = 5
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "crates/tars-nash/tests/fixtures/vertex_enumeration.json"


def classic_games() -> list[tuple[str, np.ndarray, np.ndarray]]:
    rps = np.array([[0, -1, 1], [1, 0, -1], [-1, 1, 0]], dtype=float)
    return [
        ("matching_pennies", np.array([[1.0, -1.0], [-1.0, 1.0]]), np.array([[-1.0, 1.0], [1.0, -1.0]])),
        ("prisoners_dilemma", np.array([[3.0, 0.0], [5.0, 1.0]]), np.array([[3.0, 5.0], [0.0, 1.0]])),
        ("battle_of_the_sexes", np.array([[3.0, 0.0], [0.0, 2.0]]), np.array([[2.0, 0.0], [0.0, 3.0]])),
        ("rock_paper_scissors", rps, -rps),
        # von Stengel (2007, "Equilibrium computation for two-player games", section 3.5): the
        # column player is indifferent against the top row, so the top row with a segment of
        # column mixes are all equilibria.
        (
            "degenerate_top_row",
            np.array([[3.0, 3.0], [2.0, 5.0], [0.0, 6.0]]),
            np.array([[3.0, 3.0], [2.0, 6.0], [3.0, 1.0]]),
        ),
    ]


def random_games(rng: np.random.Generator) -> list[tuple[str, np.ndarray, np.ndarray]]:
    games = []
    for size, n_games in RANDOM_SIZES:
        for game_idx in range(n_games):
            a = rng.uniform(-10.0, 10.0, size=(size, size))
            b = rng.uniform(-10.0, 10.0, size=(size, size))
            games.append((f"random_{size}x{size}_{game_idx}", a, b))
    return games


def integer_games(rng: np.random.Generator) -> list[tuple[str, np.ndarray, np.ndarray]]:
    games = []
    for game_idx in range(N_INTEGER):
        n_rows, n_cols = rng.integers(2, 5, size=2)
        a = rng.integers(1, 4, size=(n_rows, n_cols)).astype(float)
        b = rng.integers(1, 4, size=(n_rows, n_cols)).astype(float)
        games.append((f"integer_{game_idx}", a, b))
    return games


def deduplicate(equilibria: list[tuple[np.ndarray, np.ndarray]]) -> list[dict]:
    unique: list[tuple[np.ndarray, np.ndarray]] = []
    for row, col in equilibria:
        if not any(np.allclose(row, r, atol=1e-9) and np.allclose(col, c, atol=1e-9) for r, c in unique):
            unique.append((row, col))
    unique.sort(key=lambda pair: (list(-pair[0]), list(-pair[1])))
    return [{"row": [float(p) for p in row], "col": [float(p) for p in col]} for row, col in unique]


def solve(name: str, a: np.ndarray, b: np.ndarray) -> dict:
    game = nashpy.Game(a, b)
    with warnings.catch_warnings():
        # nashpy warns about degenerate games and odd equilibrium counts; the fixture records them.
        warnings.simplefilter("ignore")
        equilibria = deduplicate(list(game.vertex_enumeration()))
        support_count = None
        if a.shape[0] <= SUPPORT_ENUMERATION_MAX_SIZE:
            support_count = len(list(game.support_enumeration()))
    return {
        "name": name,
        "A": a.tolist(),
        "B": b.tolist(),
        "equilibria": equilibria,
        "support_enumeration_count": support_count,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    if nashpy.__version__ != PINNED["nashpy"]:
        print(f"nashpy {nashpy.__version__} found, {PINNED['nashpy']} pinned", file=sys.stderr)
        return 1
    rng = np.random.default_rng(SEED)
    integer_rng = np.random.default_rng(SEED + 1)
    all_games = classic_games() + random_games(rng) + integer_games(integer_rng)
    games = [solve(name, a, b) for name, a, b in all_games]
    fixture = {
        "generator": "scripts/nash_fixtures.py",
        "nashpy": nashpy.__version__,
        "numpy": np.__version__,
        "seed": SEED,
        "games": games,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(fixture, indent=1) + "\n")
    n_equilibria = sum(len(game["equilibria"]) for game in games)
    print(f"wrote {len(games)} games, {n_equilibria} equilibria to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
