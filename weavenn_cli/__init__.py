"""weavenn: operate Weave-NN locally and migrate it to microservices on Kubernetes."""

__version__ = "0.1.0"
