using Osprey.Runtime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Osprey.Training;

/// <summary>One parameter group: its parameters and hyperparameters (mutable: the schedule sets lr and momentum).</summary>
public sealed class OptimizerGroup(IReadOnlyList<Parameter> parameters, double learningRate, double momentum, double weightDecay)
{
    /// <summary>The parameters.</summary>
    public IReadOnlyList<Parameter> Parameters { get; } = parameters;

    /// <summary>Learning rate.</summary>
    public double LearningRate { get; set; } = learningRate;

    /// <summary>SGD momentum, or Adam β1.</summary>
    public double Momentum { get; set; } = momentum;

    /// <summary>Weight decay (L2 for SGD, decoupled for AdamW).</summary>
    public double WeightDecay { get; set; } = weightDecay;
}

/// <summary>
/// SGD (Nesterov) and AdamW with PyTorch's update rules over parameter groups. Written here rather than using
/// TorchSharp's optimisers because their steps pass implicitly converted <see cref="Scalar"/>s to native calls and
/// leave them to finalizers, which can free a scalar while a native call still reads it (a crash seen in long runs);
/// every scalar here is explicit and disposed after use. State is saved and loaded bit-exactly. The groups are laid out
/// flat (<see cref="FlatParameters"/>): each group's update is a handful of operations on its flat buffers (PyTorch's
/// formulas element by element) instead of a handful per parameter; the saved state has a per-parameter format.
/// </summary>
public sealed class GroupedOptimizer : IDisposable
{
    /// <summary>Adam β2.</summary>
    public const double Beta2 = 0.999;

    /// <summary>Adam ε.</summary>
    public const double Epsilon = 1e-8;

    readonly Tensor?[] _first, _second;   // per group: SGD momentum buffer / Adam exp_avg, Adam exp_avg_sq (null before the first step)

    /// <summary>Creates an optimiser of <paramref name="kind"/> over <paramref name="groups"/>.</summary>
    /// <param name="kind">SGD or AdamW.</param>
    /// <param name="groups">The parameter groups.</param>
    /// <param name="flat">The same groups laid out flat (same parameters, same order).</param>
    public GroupedOptimizer(OptimizerKind kind, IReadOnlyList<OptimizerGroup> groups, FlatParameters flat)
    {
        if (flat.Groups.Count != groups.Count || groups.Where((g, i) => g.Parameters.Count != flat.Groups[i].Parameters.Count ||
                g.Parameters.Where((p, j) => !ReferenceEquals(p, flat.Groups[i].Parameters[j])).Any()).Any())
            throw new ArgumentException("the flat layout does not hold the optimiser's groups in order", nameof(flat));
        Kind = kind;
        Groups = groups;
        Flat = flat;
        _first = new Tensor?[groups.Count];
        _second = new Tensor?[groups.Count];
    }

    /// <summary>The flat layout the updates run on.</summary>
    public FlatParameters Flat { get; }

    /// <summary>SGD or AdamW.</summary>
    public OptimizerKind Kind { get; }

    /// <summary>The groups, in order.</summary>
    public IReadOnlyList<OptimizerGroup> Groups { get; }

    /// <summary>Optimiser steps taken (Adam's bias correction uses it).</summary>
    public long Steps { get; private set; }

    /// <summary>Applies one update from the parameters' gradients (the flat gradient buffers).</summary>
    public void Step()
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        Steps++;
        for (int g = 0; g < Groups.Count; g++)
        {
            FlatGroup layout = Flat.Groups[g];
            if (layout.Count == 0) continue;
            if (Kind == OptimizerKind.Sgd) SgdUpdate(Groups[g], layout.Values, layout.Gradients, ref _first[g]);
            else AdamWUpdate(Groups[g], layout.Values, layout.Gradients, ref _first[g], ref _second[g]);
        }
    }

    // torch.optim.SGD(nesterov=True, dampening=0): d = g + wd·p; buf = d (first) or m·buf + d; p −= lr·(d + m·buf).
    static void SgdUpdate(OptimizerGroup group, Tensor values, Tensor gradients, ref Tensor? buffer)
    {
        using Scalar decay = group.WeightDecay.ToScalar(), momentum = group.Momentum.ToScalar(), step = (-group.LearningRate).ToScalar();
        using var scope = NewDisposeScope();
        var direction = group.WeightDecay != 0 ? gradients.add(values, alpha: decay) : gradients;
        if (buffer is not null) buffer.mul_(momentum).add_(direction, Scalars.One);
        else buffer = direction.clone().detach().DetachFromDisposeScope();
        values.add_(direction.add(buffer, alpha: momentum), alpha: step);
    }

    // torch.optim.AdamW: p ·= 1 − lr·wd; m = β1·m + (1 − β1)·g; v = β2·v + (1 − β2)·g²;
    // p −= lr/(1 − β1^t) · m / (√v / √(1 − β2^t) + ε).
    void AdamWUpdate(OptimizerGroup group, Tensor values, Tensor gradients, ref Tensor? average, ref Tensor? squares)
    {
        double beta1 = group.Momentum;
        double correction1 = 1 - Math.Pow(beta1, Steps), correction2 = 1 - Math.Pow(Beta2, Steps);
        using Scalar shrink = (1 - group.LearningRate * group.WeightDecay).ToScalar(), b1 = beta1.ToScalar(),
            oneMinusB1 = (1 - beta1).ToScalar(), b2 = Beta2.ToScalar(), oneMinusB2 = (1 - Beta2).ToScalar(),
            sqrtCorrection2 = Math.Sqrt(correction2).ToScalar(), eps = Epsilon.ToScalar(),
            step = (-group.LearningRate / correction1).ToScalar();
        using var scope = NewDisposeScope();
        average ??= zeros_like(values).DetachFromDisposeScope();
        squares ??= zeros_like(values).DetachFromDisposeScope();
        if (group.WeightDecay != 0) values.mul_(shrink);
        average.mul_(b1).add_(gradients, alpha: oneMinusB1);
        squares.mul_(b2).addcmul_(gradients, gradients, value: oneMinusB2);
        var denominator = squares.sqrt().div_(sqrtCorrection2).add_(eps, Scalars.One);
        values.addcdiv_(average, denominator, value: step);
    }

    /// <summary>Zeroes every gradient (the flat gradient buffers; PyTorch's <c>zero_grad(set_to_none=False)</c>): the
    /// gradients stay views of them.</summary>
    public void ZeroGrad() => Flat.ZeroGradients();

    /// <summary>Writes the step count, group hyperparameters and every parameter's state tensors.</summary>
    public void Save(BinaryWriter writer)
    {
        writer.Write((int)Kind);
        writer.Write(Steps);
        writer.Write(Groups.Count);
        for (int g = 0; g < Groups.Count; g++)
        {
            var group = Groups[g];
            writer.Write(group.LearningRate);
            writer.Write(group.Momentum);
            writer.Write(group.WeightDecay);
            writer.Write(group.Parameters.Count);
            for (int i = 0; i < group.Parameters.Count; i++)
            {
                using var scope = NewDisposeScope();
                WriteState(writer, StateOf(_first, g, i));
                WriteState(writer, StateOf(_second, g, i));
            }
        }
    }

    // Parameter i of group g's state: a copy of its part of the group's buffer (null before the first step).
    Tensor? StateOf(Tensor?[] states, int g, int i) => states[g] is { } buffer ? Flat.Groups[g].Slice(buffer, i).clone() : null;

    /// <summary>Restores what <see cref="Save"/> wrote (same model and groups).</summary>
    public void Load(BinaryReader reader)
    {
        if ((OptimizerKind)reader.ReadInt32() != Kind) throw new InvalidDataException($"optimizer state is not {Kind}");
        Steps = reader.ReadInt64();
        if (reader.ReadInt32() != Groups.Count) throw new InvalidDataException("optimizer state has other parameter groups");
        for (int g = 0; g < Groups.Count; g++)
        {
            var group = Groups[g];
            group.LearningRate = reader.ReadDouble();
            group.Momentum = reader.ReadDouble();
            group.WeightDecay = reader.ReadDouble();
            if (reader.ReadInt32() != group.Parameters.Count) throw new InvalidDataException("optimizer state has other parameters");
            _first[g]?.Dispose();
            _second[g]?.Dispose();
            _first[g] = _second[g] = null;
            for (int i = 0; i < group.Parameters.Count; i++)
            {
                ReadState(reader, _first, g, i);
                ReadState(reader, _second, g, i);
            }
        }
    }

    static void WriteState(BinaryWriter writer, Tensor? state)
    {
        writer.Write(state is not null);
        if (state is null) return;
        writer.Write(state.shape.Length);
        foreach (long d in state.shape) writer.Write(d);
        state.Save(writer);
    }

    // Reads parameter i of group g's state into its part of the group's buffer, which starts as zeros where a parameter had
    // no state yet (the same next step: SGD's m·0 + d = d, Adam's moments start at zero).
    void ReadState(BinaryReader reader, Tensor?[] states, int g, int i)
    {
        Parameter parameter = Groups[g].Parameters[i];
        if (!reader.ReadBoolean()) return;
        var shape = new long[reader.ReadInt32()];
        for (int d = 0; d < shape.Length; d++) shape[d] = reader.ReadInt64();
        // Tensor.Load writes the bytes straight into the tensor's memory: read on the CPU, then copy to the device.
        using var host = empty(shape, dtype: parameter.dtype);
        host.Load(reader);
        FlatGroup layout = Flat.Groups[g];
        states[g] ??= zeros(layout.Count, dtype: parameter.dtype, device: parameter.device).DetachFromDisposeScope();
        using var part = layout.Slice(states[g]!, i);
        using var noGrad = no_grad();
        part.copy_(host.view(part.shape));
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        foreach (var t in _first.Concat(_second).OfType<Tensor>()) t.Dispose();
    }
}

/// <summary>The optimiser algorithms Osprey implements.</summary>
public enum OptimizerKind
{
    /// <summary>SGD with Nesterov momentum.</summary>
    Sgd,
    /// <summary>AdamW (decoupled weight decay).</summary>
    AdamW,
}
