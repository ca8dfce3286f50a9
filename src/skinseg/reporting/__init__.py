"""What people read and look at: progress bars, tables, figures and HTML pages, drawn from plain data."""
