# Staging: one managed database, reached from this machine (@local) by the URL held in the
# environment variable STAGING_DATABASE_URL (see group_data/staging.py and the README, "Environments").
# For a self-hosted server reached over SSH, list the server instead, e.g.
#     staging = [("db1.staging.example.com", {"ssh_user": "deploy"})]
# psql and pg_dump then run on that server, and backups land there.
staging = ["@local"]
