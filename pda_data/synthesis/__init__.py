"""Training-sample synthesis: abnormal structures, highlight artifacts and Aug-Portraits (Sec. 3.2-3.3)."""
