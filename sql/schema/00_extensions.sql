-- Extensions the schema needs. gen_random_uuid() is built into PostgreSQL 13 and later;
-- the runbooks still ask for pgcrypto, and digest()/crypt() come from it.
CREATE EXTENSION pgcrypto;
