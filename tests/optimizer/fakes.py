"""Small fakes for optimizer unit tests: a GPU backend with fault hooks."""

from dcim.gpu_backend import GpuBackend, GpuError, GpuIdentity, PowerConstraints

H100_CONSTRAINTS = PowerConstraints(200.0, 700.0, 700.0)


class FakeGpus(GpuBackend):
    def __init__(self, n=2, host="h1", cons=H100_CONSTRAINTS):
        self.host = host
        self.cons = cons
        self.limits = [cons.default_w] * n
        self.fail_next_set = False
        self.readback_offset_w = 0.0
        self.sets = []

    def devices(self):
        return [GpuIdentity(i, f"GPU-{self.host}-{i}", "NVIDIA H100 80GB HBM3") for i in range(len(self.limits))]

    def sample(self, index):
        return {"power_limit_w": self.limits[index]}

    def power_constraints(self, index):
        return self.cons

    def power_limit_w(self, index):
        return self.limits[index]

    def set_power_limit_w(self, index, limit_w):
        self.sets.append((index, limit_w))
        if self.fail_next_set:
            self.fail_next_set = False
            raise GpuError("injected")
        self.limits[index] = float(limit_w) + self.readback_offset_w
        return self.limits[index]
