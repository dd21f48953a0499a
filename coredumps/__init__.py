"""The coredump domain: plain Python with no Prefect import.

Config, database models, GDB driving and MI parsing, ELF core notes, crash
signatures, scoring, compressed inputs and storage backends live here. Each
outside system sits behind one small module, and only that module imports its
library.
"""
