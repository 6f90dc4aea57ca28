using Osprey.Config;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Osprey.Training;

/// <summary>A model's parameters split as Ultralytics does: biases, decayed weights, BatchNorm weights.</summary>
/// <param name="Biases">pg0: every parameter whose name contains "bias" (no weight decay).</param>
/// <param name="Weights">pg1: conv/linear weights (weight decay).</param>
/// <param name="NormWeights">pg2: BatchNorm weights (no weight decay).</param>
public sealed record ParameterGroups(IReadOnlyList<Parameter> Biases, IReadOnlyList<Parameter> Weights,
    IReadOnlyList<Parameter> NormWeights)
{
    /// <summary>Splits the trainable parameters of <paramref name="model"/>, then those of each module of
    /// <paramref name="extra"/> (a loss term's, e.g. distillation's projector: after the model's in every group, as
    /// Ultralytics' optimiser walks a wrapper's student before its projector).</summary>
    public static ParameterGroups Of(nn.Module model, IReadOnlyList<nn.Module>? extra = null)
    {
        var biases = new List<Parameter>();
        var weights = new List<Parameter>();
        var norms = new List<Parameter>();
        foreach (nn.Module root in extra is null ? new[] { model } : extra.Prepend(model))
            Split(root, biases, weights, norms);
        return new(biases, weights, norms);
    }

    static void Split(nn.Module model, List<Parameter> biases, List<Parameter> weights, List<Parameter> norms)
    {
        foreach (var (_, module) in model.named_modules())
        {
            foreach (var (name, parameter) in module.named_parameters(recurse: false))
            {
                if (!parameter.requires_grad) continue; // frozen (DFL, freeze=) parameters stay out
                if (name.Contains("bias", StringComparison.Ordinal)) biases.Add(parameter);
                else if (module is BatchNorm2d or BatchNorm1d) norms.Add(parameter);
                else weights.Add(parameter);
            }
        }
    }
}

/// <summary>The optimiser a run uses, with Ultralytics' groups and the values <c>optimizer=auto</c> resolved to.</summary>
public sealed class TrainingOptimizer
{
    TrainingOptimizer(GroupedOptimizer optimizer, string name, double lr, double momentum, double weightDecay,
        double warmupBiasLr, ParameterGroups groups)
    {
        Optimizer = optimizer;
        Name = name;
        LearningRate = lr;
        Momentum = momentum;
        WeightDecay = weightDecay;
        WarmupBiasLr = warmupBiasLr;
        Groups = groups;
    }

    /// <summary>The optimiser (groups in order pg0 biases, pg1 weights, pg2 BatchNorm weights).</summary>
    public GroupedOptimizer Optimizer { get; }

    /// <summary>SGD or AdamW.</summary>
    public string Name { get; }

    /// <summary>Initial learning rate (lr0, or what auto chose).</summary>
    public double LearningRate { get; }

    /// <summary>Momentum (SGD) or β1 (AdamW).</summary>
    public double Momentum { get; }

    /// <summary>Weight decay of pg1 after scaling by batch·accumulate/nbs.</summary>
    public double WeightDecay { get; }

    /// <summary>Warmup bias lr (auto sets it to 0, as Ultralytics does).</summary>
    public double WarmupBiasLr { get; }

    /// <summary>The parameter split.</summary>
    public ParameterGroups Groups { get; }

    /// <summary>One line for the log, like Ultralytics': "SGD(lr=0.01, momentum=0.9) with parameter groups …".</summary>
    public string Summary =>
        $"{Name}(lr={LearningRate:0.######}, momentum={Momentum}) with parameter groups {Groups.NormWeights.Count} " +
        $"weight(decay=0.0), {Groups.Weights.Count} weight(decay={WeightDecay:0.########}), {Groups.Biases.Count} bias(decay=0.0)";

    /// <summary>
    /// Builds the optimiser. <paramref name="name"/> is SGD, AdamW or auto: auto picks AdamW with
    /// <c>lr = round(0.002·5/(4 + nc), 6)</c>, momentum 0.9 for runs of at most 10 000 iterations, else SGD(0.01, 0.9).
    /// Weight decay is scaled by <c>batch·accumulate/nbs</c>. <paramref name="flat"/>: the groups laid out flat
    /// (<see cref="FlatParameters.For"/>: <see cref="ParameterGroups.Of"/> in the order pg0, pg1, pg2); <paramref name="extra"/>:
    /// the loss terms' trainable modules laid out with them.
    /// </summary>
    public static TrainingOptimizer Create(nn.Module model, OptimizerChoice name, double lr0, double momentum, double weightDecay,
        double warmupBiasLr, int nc, long iterations, int batch, int accumulate, int nominalBatch, FlatParameters flat,
        IReadOnlyList<nn.Module>? extra = null)
    {
        double decay = weightDecay * batch * accumulate / nominalBatch;
        if (name == OptimizerChoice.Auto)
        {
            (name, lr0, momentum) = iterations > 10000 ? (OptimizerChoice.SGD, 0.01, 0.9) : (OptimizerChoice.AdamW, Math.Round(0.002 * 5 / (4 + nc), 6), 0.9);
            warmupBiasLr = 0.0;
        }
        var groups = ParameterGroups.Of(model, extra);
        OptimizerKind algorithm = name == OptimizerChoice.SGD ? OptimizerKind.Sgd : OptimizerKind.AdamW;
        var optimizer = new GroupedOptimizer(algorithm, new[]
        {
            new OptimizerGroup(groups.Biases, lr0, momentum, 0),
            new OptimizerGroup(groups.Weights, lr0, momentum, decay),
            new OptimizerGroup(groups.NormWeights, lr0, momentum, 0),
        }, flat);
        return new(optimizer, algorithm == OptimizerKind.Sgd ? "SGD" : "AdamW", lr0, momentum, decay, warmupBiasLr, groups);
    }

    /// <summary>Learning rate of each group (pg0, pg1, pg2).</summary>
    public IReadOnlyList<double> GroupLearningRates => Optimizer.Groups.Select(g => g.LearningRate).ToArray();

    /// <summary>
    /// Applies one schedule point. Momentum is set on SGD groups only: Ultralytics warms momentum only where a
    /// group has a "momentum" key, which Adam-family groups do not.
    /// </summary>
    public void Apply(ScheduleValues values)
    {
        for (int g = 0; g < Optimizer.Groups.Count; g++)
        {
            Optimizer.Groups[g].LearningRate = values.LearningRates[g];
            if (Optimizer.Kind == OptimizerKind.Sgd) Optimizer.Groups[g].Momentum = values.Momentum;
        }
    }
}
