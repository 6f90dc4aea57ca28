using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Training;

/// <summary>
/// Exponential moving average of a model's floating-point state (parameters and BatchNorm statistics), as
/// Ultralytics' ModelEMA: <c>d = decay·(1 − exp(−updates/tau))</c>, <c>ema = d·ema + (1 − d)·model</c>. The EMA is
/// what validation and saving use.
/// </summary>
public sealed class ModelEma
{
    readonly IReadOnlyList<(string Name, Tensor Ema)> _state;
    readonly double _decay;
    readonly double _tau;

    /// <summary>Starts the average at the model's current state; <paramref name="ema"/> is a copy of the model.</summary>
    public ModelEma(nn.Module ema, double decay = 0.9999, double tau = 2000, long updates = 0)
    {
        Module = ema;
        _decay = decay;
        _tau = tau;
        Updates = updates;
        ema.eval();
        foreach (var (_, p) in ema.named_parameters()) p.requires_grad = false;
        _state = ema.state_dict().Where(kv => kv.Value.is_floating_point()).Select(kv => (kv.Key, kv.Value)).ToList();
    }

    /// <summary>The averaged model.</summary>
    public nn.Module Module { get; }

    /// <summary>Number of updates so far (part of the training state).</summary>
    public long Updates { get; private set; }

    /// <summary>The decay the next update uses.</summary>
    public double NextDecay => _decay * (1 - Math.Exp(-(Updates + 1) / _tau));

    /// <summary>Folds the model's current state into the average.</summary>
    public void Update(nn.Module model)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        double d = NextDecay;
        Updates++;
        var source = model.state_dict();
        // Explicit scalars, alive until the loop ends: TorchSharp's implicit double → Scalar conversions leave the
        // native scalar to a finalizer that can run while a native call still reads it.
        using Scalar decay = d.ToScalar(), rest = (1 - d).ToScalar();
        foreach (var (name, ema) in _state)
        {
            ema.mul_(decay).add_(source[name].detach().to(ema.dtype), alpha: rest);
        }
    }
}
