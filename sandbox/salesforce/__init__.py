"""A local, protocol-faithful Salesforce org over HTTPS for tests, the demo and the benchmarks."""

from sandbox.salesforce.server import SalesforceSandbox

__all__ = ["SalesforceSandbox"]
