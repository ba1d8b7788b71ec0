"""Forget requests as data: a YAML / JSON file naming what to forget, what to keep and the reference.

    from obliviate.requests import load_request, load_request_data
    data = load_request_data(load_request("request.yaml"))
    bench = data.benchmark()
"""

from obliviate.requests.counterfactual import synthesize_subjects
from obliviate.requests.request import (ForgetRequest, RequestData, load_request, load_request_data,
                                        request_from_benchmark)

__all__ = ["ForgetRequest", "RequestData", "load_request", "load_request_data", "request_from_benchmark",
           "synthesize_subjects"]
