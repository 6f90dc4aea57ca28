namespace Osprey.Benchmarks;

/// <summary>One rank's compute per training step, in seconds: what a data-parallel step adds communication to.</summary>
/// <param name="Forward">Forward and loss (everything before backward).</param>
/// <param name="Backward">Backward.</param>
/// <param name="Optimizer">Optimiser step after the gradients are averaged (clipping, SGD, EMA).</param>
public sealed record StepCompute(double Forward, double Backward, double Optimizer)
{
    /// <summary>Forward + backward + optimiser.</summary>
    public double Total => Forward + Backward + Optimizer;

    /// <summary>The same shares of forward, backward and optimiser scaled to a total of <paramref name="total"/> seconds.</summary>
    public StepCompute ScaledTo(double total) =>
        new(Forward * total / Total, Backward * total / Total, Optimizer * total / Total);
}

/// <summary>Predicted step of W data-parallel ranks.</summary>
/// <param name="World">Ranks.</param>
/// <param name="Compute">One rank's compute (the step of one rank alone at the same per-rank batch).</param>
/// <param name="BucketSeconds">All-reduce time of each gradient bucket, in all-reduce order.</param>
/// <param name="SerialStep">Step when the all-reduce starts after backward: compute + Σ bucket times.</param>
/// <param name="OverlappedStep">Step when each bucket is all-reduced as soon as backward has produced it.</param>
public sealed record ScalingPrediction(int World, StepCompute Compute, IReadOnlyList<double> BucketSeconds,
    double SerialStep, double OverlappedStep)
{
    /// <summary>Σ bucket all-reduce times.</summary>
    public double AllReduceSeconds => BucketSeconds.Sum();

    /// <summary>Compute / serial step: the fraction of linear speed-up (weak scaling) without overlap.</summary>
    public double SerialEfficiency => Compute.Total / SerialStep;

    /// <summary>Compute / overlapped step.</summary>
    public double OverlappedEfficiency => Compute.Total / OverlappedStep;
}

/// <summary>
/// Data-parallel scaling (weak scaling: every rank keeps its batch) from one rank's compute and a ring all-reduce model.
/// Without overlap the step is compute + the all-reduce of every bucket. With overlap (PyTorch DDP's) bucket i is ready
/// when backward has produced its gradients — assumed at a constant rate in bytes over backward, buckets in the order
/// <see cref="Replica"/> reduces them — and the buckets are all-reduced one after another, each
/// starting when it is ready and the previous one is done; the optimiser starts after the later of backward's end and the
/// last bucket's end.
/// </summary>
public static class ScalingModel
{
    /// <summary>Predicts the step of <paramref name="world"/> ranks.</summary>
    /// <param name="compute">One rank's step.</param>
    /// <param name="bucketBytes">Gradient buckets in all-reduce order (<see cref="Replica.Buckets"/>).</param>
    /// <param name="cost">Ring all-reduce cost.</param>
    /// <param name="world">Ranks (8 for one 8-GPU machine).</param>
    public static ScalingPrediction Predict(StepCompute compute, IReadOnlyList<long> bucketBytes, AllReduceCostModel cost, int world)
    {
        if (bucketBytes.Count == 0) throw new ArgumentException("no gradient buckets", nameof(bucketBytes));
        double[] seconds = bucketBytes.Select(b => cost.Seconds(b, world)).ToArray();
        double serial = compute.Total + seconds.Sum();
        double total = bucketBytes.Sum(), done = 0, end = compute.Forward;
        for (int i = 0; i < bucketBytes.Count; i++)
        {
            done += bucketBytes[i];
            double ready = compute.Forward + compute.Backward * done / total;
            end = Math.Max(end, ready) + seconds[i];
        }
        double overlapped = Math.Max(compute.Forward + compute.Backward, end) + compute.Optimizer;
        return new ScalingPrediction(world, compute, seconds, serial, overlapped);
    }
}
