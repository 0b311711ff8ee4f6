# Production: one managed database, reached from this machine (@local) by the URL held in the
# environment variable PRODUCTION_DATABASE_URL (see group_data/production.py). Deploys here are
# refused unless signoffs/production.yml, signed by a key in signoffs/allowed_signers, covers the
# current sql/, smoke checks, policy and production's schema.
# Several hosts are converged in parallel by pyinfra, e.g.
#     production = ["db1.example.com", "db2.example.com"]
# or several managed databases as named local hosts (pgconverge's @pglocal connector):
#     production = ["@pglocal/orders", "@pglocal/billing"]
production = ["@local"]
