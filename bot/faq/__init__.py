"""Free questions: the FAQ matcher and its evaluation."""
