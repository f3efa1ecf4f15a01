"""Deployment: values, rendering of Compose and Kubernetes manifests, validation, cluster ops."""
