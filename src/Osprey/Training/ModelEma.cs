using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Osprey.Training;

/// <summary>
/// Exponential moving average of a model's floating-point state (parameters and BatchNorm statistics), as
/// Ultralytics' ModelEMA: <c>d = decay·(1 − exp(−updates/tau))</c>, <c>ema = d·ema + (1 − d)·model</c>. The EMA is
/// what validation and saving use.
/// </summary>
public sealed class ModelEma : IDisposable
{
    IReadOnlyList<(string Name, Tensor Ema)> _state;                       // averaged one tensor at a time
    readonly List<(Tensor Ema, Tensor Model)> _flat = new();                 // averaged a flat group at a time
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
        foreach (var (ema, values) in _flat) ema.mul_(decay).add_(values, alpha: rest);
        foreach (var (name, ema) in _state)
        {
            ema.mul_(decay).add_(source[name].detach().to(ema.dtype), alpha: rest);
        }
    }

    /// <summary>
    /// Lays out the averaged copies of <paramref name="flat"/>'s parameters (found by name in <paramref name="model"/>,
    /// the trained model) the same way, so that each group is averaged in two operations on its flat buffer; the other
    /// state (BatchNorm statistics, frozen parameters) stays per tensor. The same arithmetic element by element.
    /// </summary>
    public void UseFlatLayout(nn.Module model, FlatParameters flat)
    {
        var names = new Dictionary<Parameter, string>(ReferenceEqualityComparer.Instance);
        foreach (var (name, parameter) in model.named_parameters()) names[parameter] = name;
        var averaged = Module.named_parameters().ToDictionary(np => np.name, np => (Tensor)np.parameter);
        var covered = new HashSet<string>();
        foreach (FlatGroup group in flat.Groups)
        {
            if (group.Count == 0) continue;
            // the model's parameters come first; a loss term's (distillation's projector) follow and are not averaged
            var groupNames = group.Parameters.TakeWhile(names.ContainsKey).Select(p => names[p]).ToList();
            if (groupNames.Count == 0) continue;
            if (groupNames.Count == group.Parameters.Count) Average(groupNames, averaged, group.Values, covered);
            else Average(groupNames, averaged, group.Values.narrow(0, 0, group.CountOf(groupNames.Count)).DetachFromDisposeScope(), covered);
        }
        if (flat.Buffers is { } buffers)
        {
            var averagedBuffers = Module.named_buffers().ToDictionary(b => b.name, b => b.buffer);
            if (buffers.Names.All(averagedBuffers.ContainsKey)) Average(buffers.Names, averagedBuffers, buffers.Values, covered);
        }
        _state = _state.Where(entry => !covered.Contains(entry.Name)).ToList();
    }

    // Packs the averaged model's tensors of these names into one buffer laid out as the model's flat values (the same
    // shapes in the same order) and averages them as one from then on.
    void Average(IReadOnlyList<string> names, Dictionary<string, Tensor> averaged, Tensor values, HashSet<string> covered)
    {
        var (buffer, offsets) = FlatParameters.Pack(names.Select(n => averaged[n]).ToList(), values.dtype, values.device);
        if (offsets[^1] != values.numel())
            throw new ArgumentException("the averaged model's tensors do not match the trained model's flat layout");
        _flat.Add((buffer, values));
        covered.UnionWith(names);
    }

    /// <summary>Frees the flat buffers of <see cref="UseFlatLayout"/> (the averaged model's tensors are views of them).</summary>
    public void Dispose()
    {
        foreach (var (ema, _) in _flat) ema.Dispose();
        _flat.Clear();
    }
}
