"""`python -m tests.cluster.kubelet`: see `main`."""

from tests.cluster.kubelet.main import main

main()
