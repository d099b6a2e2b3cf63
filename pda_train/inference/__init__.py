"""After training: export, translation with paste-back, evaluation and its metrics."""
