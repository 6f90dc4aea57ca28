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
/// every scalar here is explicit and disposed after use. State is saved and loaded bit-exactly.
/// </summary>
public sealed class GroupedOptimizer : IDisposable
{
    /// <summary>Adam β2.</summary>
    public const double Beta2 = 0.999;

    /// <summary>Adam ε.</summary>
    public const double Epsilon = 1e-8;

    readonly Dictionary<Parameter, Tensor> _first = new(ReferenceEqualityComparer.Instance);   // SGD momentum buffer / Adam exp_avg
    readonly Dictionary<Parameter, Tensor> _second = new(ReferenceEqualityComparer.Instance);  // Adam exp_avg_sq

    /// <summary>Creates an optimiser of <paramref name="kind"/> over <paramref name="groups"/>.</summary>
    public GroupedOptimizer(OptimizerKind kind, IReadOnlyList<OptimizerGroup> groups)
    {
        Kind = kind;
        Groups = groups;
    }

    /// <summary>SGD or AdamW.</summary>
    public OptimizerKind Kind { get; }

    /// <summary>The groups, in order.</summary>
    public IReadOnlyList<OptimizerGroup> Groups { get; }

    /// <summary>Optimiser steps taken (Adam's bias correction uses it).</summary>
    public long Steps { get; private set; }

    /// <summary>Applies one update from the parameters' gradients.</summary>
    public void Step()
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        Steps++;
        foreach (var group in Groups)
        {
            if (Kind == OptimizerKind.Sgd) SgdStep(group);
            else AdamWStep(group);
        }
    }

    // torch.optim.SGD(nesterov=True, dampening=0): d = g + wd·p; buf = d (first) or m·buf + d; p −= lr·(d + m·buf).
    void SgdStep(OptimizerGroup group)
    {
        using Scalar decay = group.WeightDecay.ToScalar(), momentum = group.Momentum.ToScalar(), step = (-group.LearningRate).ToScalar();
        foreach (var parameter in group.Parameters)
        {
            if (parameter.grad is not { } grad) continue;
            var direction = group.WeightDecay != 0 ? grad.add(parameter, alpha: decay) : grad;
            if (_first.TryGetValue(parameter, out var buffer)) buffer.mul_(momentum).add_(direction, Scalars.One);
            else _first[parameter] = buffer = direction.clone().detach().DetachFromDisposeScope();
            parameter.add_(direction.add(buffer, alpha: momentum), alpha: step);
        }
    }

    // torch.optim.AdamW: p ·= 1 − lr·wd; m = β1·m + (1 − β1)·g; v = β2·v + (1 − β2)·g²;
    // p −= lr/(1 − β1^t) · m / (√v / √(1 − β2^t) + ε).
    void AdamWStep(OptimizerGroup group)
    {
        double beta1 = group.Momentum;
        double correction1 = 1 - Math.Pow(beta1, Steps), correction2 = 1 - Math.Pow(Beta2, Steps);
        using Scalar shrink = (1 - group.LearningRate * group.WeightDecay).ToScalar(), b1 = beta1.ToScalar(),
            oneMinusB1 = (1 - beta1).ToScalar(), b2 = Beta2.ToScalar(), oneMinusB2 = (1 - Beta2).ToScalar(),
            sqrtCorrection2 = Math.Sqrt(correction2).ToScalar(), eps = Epsilon.ToScalar(),
            step = (-group.LearningRate / correction1).ToScalar();
        foreach (var parameter in group.Parameters)
        {
            if (parameter.grad is not { } grad) continue;
            if (!_first.TryGetValue(parameter, out var average))
            {
                _first[parameter] = average = zeros_like(parameter).DetachFromDisposeScope();
                _second[parameter] = zeros_like(parameter).DetachFromDisposeScope();
            }
            var squares = _second[parameter];
            if (group.WeightDecay != 0) parameter.mul_(shrink);
            average.mul_(b1).add_(grad, alpha: oneMinusB1);
            squares.mul_(b2).addcmul_(grad, grad, value: oneMinusB2);
            var denominator = squares.sqrt().div_(sqrtCorrection2).add_(eps, Scalars.One);
            parameter.addcdiv_(average, denominator, value: step);
        }
    }

    /// <summary>Sets every gradient to null (as PyTorch's zero_grad(set_to_none=True)).</summary>
    public void ZeroGrad()
    {
        foreach (var group in Groups)
            foreach (var parameter in group.Parameters)
            {
                parameter.grad?.Dispose();
                parameter.grad = null;
            }
    }

    /// <summary>Writes the step count, group hyperparameters and every state tensor.</summary>
    public void Save(BinaryWriter writer)
    {
        writer.Write((int)Kind);
        writer.Write(Steps);
        writer.Write(Groups.Count);
        foreach (var group in Groups)
        {
            writer.Write(group.LearningRate);
            writer.Write(group.Momentum);
            writer.Write(group.WeightDecay);
            writer.Write(group.Parameters.Count);
            foreach (var parameter in group.Parameters)
            {
                WriteState(writer, _first.GetValueOrDefault(parameter));
                WriteState(writer, _second.GetValueOrDefault(parameter));
            }
        }
    }

    /// <summary>Restores what <see cref="Save"/> wrote (same model and groups).</summary>
    public void Load(BinaryReader reader)
    {
        if ((OptimizerKind)reader.ReadInt32() != Kind) throw new InvalidDataException($"optimizer state is not {Kind}");
        Steps = reader.ReadInt64();
        if (reader.ReadInt32() != Groups.Count) throw new InvalidDataException("optimizer state has other parameter groups");
        foreach (var group in Groups)
        {
            group.LearningRate = reader.ReadDouble();
            group.Momentum = reader.ReadDouble();
            group.WeightDecay = reader.ReadDouble();
            if (reader.ReadInt32() != group.Parameters.Count) throw new InvalidDataException("optimizer state has other parameters");
            foreach (var parameter in group.Parameters)
            {
                ReadState(reader, _first, parameter);
                ReadState(reader, _second, parameter);
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

    static void ReadState(BinaryReader reader, Dictionary<Parameter, Tensor> states, Parameter parameter)
    {
        if (states.Remove(parameter, out var old)) old.Dispose();
        if (!reader.ReadBoolean()) return;
        var shape = new long[reader.ReadInt32()];
        for (int i = 0; i < shape.Length; i++) shape[i] = reader.ReadInt64();
        var state = empty(shape, dtype: parameter.dtype, device: parameter.device).DetachFromDisposeScope();
        state.Load(reader);
        states[parameter] = state;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        foreach (var t in _first.Values.Concat(_second.Values)) t.Dispose();
        _first.Clear();
        _second.Clear();
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
