"""HTTP APIs: the STS, the 2021-01-01 data plane, the v1 API, and the render servers' callbacks.

Only this package knows API versions, status codes and error bodies.
"""
