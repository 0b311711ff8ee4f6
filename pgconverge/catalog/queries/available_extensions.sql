-- The extension versions installed on the server's disk.
SELECT name, default_version AS version FROM pg_available_extensions ORDER BY 1
