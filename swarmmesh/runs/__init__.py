"""The experiment pipeline: the framework every experiment runs in, run folders and raw files,
progress, figures, report.md, and the open-loop timeline of the lifecycle experiments."""
