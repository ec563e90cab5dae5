"""Use cases: one folder each (``pipelines/usecases/<name>/``), plus its suites in
``data_checks/<name>/``. The core never imports them; they import the core."""
