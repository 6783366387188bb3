"""Investigation: named SQL investigations over a case, their charts, DataFrames shown safely."""
