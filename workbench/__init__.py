"""The Textual workbench: start runs, watch them live, step through traces. Imports no torch."""
