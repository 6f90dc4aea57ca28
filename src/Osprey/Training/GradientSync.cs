namespace Osprey.Training;

/// <summary>When <see cref="DataParallel"/> all-reduces the gradient buckets of an optimiser micro-step.</summary>
public enum GradientSync
{
    /// <summary>After backward, bucket by bucket (blocking).</summary>
    PostBackward,

    /// <summary>
    /// During backward: each bucket's all-reduce starts as soon as its gradients are final (in bucket order), and
    /// backward's end waits for them. The same buckets and arithmetic as <see cref="PostBackward"/>, so the same bits.
    /// Needs a group with an all-reduce channel (MPI) and CPU float32/float64 gradients; otherwise post-backward.
    /// </summary>
    Overlapped,
}

/// <summary>What happened when, during one synchronised micro-step (for tests and profiling).</summary>
/// <param name="Kind">The event.</param>
/// <param name="Index">Module marker index (<see cref="GradientSyncEventKind.GradientsReady"/>) or bucket index.</param>
public readonly record struct GradientSyncEvent(GradientSyncEventKind Kind, int Index);

/// <summary>Kinds of <see cref="GradientSyncEvent"/>.</summary>
public enum GradientSyncEventKind
{
    /// <summary>Backward reached a module's input: its parameters' gradients are final.</summary>
    GradientsReady,

    /// <summary>A bucket's all-reduce started.</summary>
    BucketStarted,

    /// <summary>Backward returned and the gradient sync was asked to finish.</summary>
    BackwardFinished,
}

/// <summary>Where one <see cref="DataParallel.AverageGradients"/> spent its time (for the DDP benchmark's breakdown).</summary>
/// <param name="CopyInSeconds">Gradients into the flat buckets (bucket views: only checking that they are views).</param>
/// <param name="CopyOutSeconds">Averages back into the gradients (zero with bucket views).</param>
/// <param name="ReduceStart"><see cref="System.Diagnostics.Stopwatch"/> timestamp at which the first bucket's all-reduce started.</param>
/// <param name="ReduceEnd">Timestamp at which the last bucket's all-reduce (with its division) returned.</param>
public readonly record struct GradientSyncTimes(double CopyInSeconds, double CopyOutSeconds, long ReduceStart, long ReduceEnd);
