"""`ap-build workflow run`: a workflow run on this machine with real Airflow and real containers (api.py)."""
