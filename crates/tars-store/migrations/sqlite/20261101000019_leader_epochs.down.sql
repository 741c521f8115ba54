DROP TABLE leader_epochs;
