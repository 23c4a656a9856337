"""``ledbelly ingest``: files and stdin into the database, in one process or several."""
