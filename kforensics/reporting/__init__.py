"""Reports: investigation notebooks (package data) run by papermill and exported as offline HTML."""
