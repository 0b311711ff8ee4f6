# The dev environment: the embedded PostgreSQL cluster that pgconverge starts under
# .pgconverge/, reached on its unix socket from this machine.
dev = ["@local"]
