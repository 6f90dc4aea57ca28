"""Test double of torch.nn: modules that only know their parameter counts."""
class P:
    def __init__(self, n): self.n = n; self.requires_grad = True
    def numel(self): return self.n
class Module:
    def __init__(self): self.__dict__['_m'] = []; self.__dict__['_p'] = []
    def __setattr__(self, k, v):
        if isinstance(v, Module): self._m.append(v)
        self.__dict__[k] = v
    def parameters(self):
        for p in self._p: yield p
        for m in self._m: yield from m.parameters()
    def requires_grad_(self, f):
        for p in self.parameters(): p.requires_grad = f
        return self
class Conv2d(Module):
    def __init__(self, c1, c2, k, s=1, p=0, bias=True):
        super().__init__(); self._p.append(P(c1 * c2 * k * k));
        if bias: self._p.append(P(c2))
class BatchNorm2d(Module):
    def __init__(self, c, eps=1e-5, momentum=0.1): super().__init__(); self._p += [P(c), P(c)]
class SiLU(Module): pass
class Identity(Module): pass
class MaxPool2d(Module):
    def __init__(self, *a): super().__init__()
class Upsample(Module):
    def __init__(self, *a): super().__init__()
class ModuleList(Module):
    def __init__(self, ms=()):
        super().__init__()
        for m in ms: self._m.append(m)
    def __iter__(self): return iter(self._m)
    def __getitem__(self, i): return self._m[i]
class Sequential(ModuleList):
    def __init__(self, *ms): super().__init__(ms)
