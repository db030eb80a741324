"""A kubelet for tests: plays the node agent, the scheduler and kube-proxy for the node-less
control plane of `../shared/cluster` (docs/kubernetes.md, "The test cluster"). It is a test
harness and never ships in the product.

Modules: `api` (apiserver client, list+watch), `network` (the per-pod network namespaces and the
bridge), `proxy` (ClusterIP relays, hosts files), `images` (the image table), `spec` (pure: env,
commands, mounts, status), `volumes`, `containers` (one container's process in bwrap), `pods`
(one pod's life), `node` (Node, Lease, binding, the service-ca stand-in), `logserver` (the
kubelet API for `kubectl logs`), `main` (the process), `entrypoint` (Tekton's entrypoint).
"""
