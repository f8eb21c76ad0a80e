"""The exporter's queue between its batchers and its senders: in memory, or persistent in SQLite."""
