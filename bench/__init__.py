"""Benchmarks of issue 7: real processes on loopback, a real load generator, figures as ratios.

Not shipped with the package and not part of `make test`. One command each, from the repository
root with the project's virtualenv (`make bench` runs them all):

    python -m bench.api        # HTTP: gateway vs. direct vs. a bare Flask insert, under wrk
    python -m bench.workflow   # create → pay → paid → notified, against Celery's no-op ceiling
    python -m bench.chaos      # the workflow load under SIGKILLed workers, a Redis and a MariaDB restart

Every run gets its own MariaDB databases (`cfmp_test_bench_*`, dropped afterwards), its own Redis
key prefix (deleted afterwards) and its own log and state directory; results go to `bench/results/`.
"""
