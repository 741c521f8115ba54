-- Which server runs a study, and until when its claim holds (several servers on one
-- database): a server claims a running study with a compare-and-set (nobody holds it, or the
-- holder's lease has ended), renews the lease while it runs the study, and releases it on a
-- graceful shutdown. A server resumes only studies whose lease has ended. The expiry is in
-- milliseconds since the Unix epoch, compared as integers on both backends.

ALTER TABLE studies ADD COLUMN owner VARCHAR(200);
ALTER TABLE studies ADD COLUMN lease_until_ms INTEGER;
