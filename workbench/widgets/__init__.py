"""The panes. Each builds its own children and redraws from a `RunState` (`show(...)`);
none reads files of a live run or talks to threads. Imported by module (no re-exports
here), so the sessions screen does not load the plotting panes it does not show."""
