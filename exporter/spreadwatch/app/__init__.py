"""The application: orchestration and state (the loop, the watcher, the snapshot, one-shot commands)."""
