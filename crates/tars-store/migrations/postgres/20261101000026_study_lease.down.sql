ALTER TABLE studies DROP COLUMN lease_until_ms;
ALTER TABLE studies DROP COLUMN owner;
