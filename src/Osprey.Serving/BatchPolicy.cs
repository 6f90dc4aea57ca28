namespace Osprey.Serving;

/// <summary>What the dynamic batcher does now: take <see cref="Take"/> items, or wait <see cref="Wait"/> for more.</summary>
/// <param name="Take">Items to take now (0: wait).</param>
/// <param name="Wait">How long to wait before deciding again; <see cref="Timeout.InfiniteTimeSpan"/> when nothing is queued.</param>
public readonly record struct BatchDecision(int Take, TimeSpan Wait)
{
    /// <summary>Nothing queued: wait for the first item.</summary>
    public static BatchDecision Idle { get; } = new(0, Timeout.InfiniteTimeSpan);
}

/// <summary>
/// Triton's dynamic batching rule as a pure function: the largest batch available up to <c>maxBatch</c>; with fewer queued,
/// wait for more until <c>maxDelay</c> after the oldest queued item arrived, then take what is there. An item that already
/// waited <c>maxDelay</c> (the worker was busy) goes at once with whatever queued behind it.
/// </summary>
public static class BatchPolicy
{
    /// <param name="queued">Items waiting.</param>
    /// <param name="oldestAge">How long the oldest of them has waited.</param>
    /// <param name="maxBatch">Largest batch.</param>
    /// <param name="maxDelay">Longest wait for a fuller batch, from the oldest item's arrival.</param>
    public static BatchDecision Decide(int queued, TimeSpan oldestAge, int maxBatch, TimeSpan maxDelay)
    {
        if (maxBatch < 1) throw new ArgumentOutOfRangeException(nameof(maxBatch), maxBatch, "must be ≥ 1");
        if (queued <= 0) return BatchDecision.Idle;
        if (queued >= maxBatch) return new BatchDecision(maxBatch, TimeSpan.Zero);
        if (oldestAge >= maxDelay) return new BatchDecision(queued, TimeSpan.Zero);
        return new BatchDecision(0, maxDelay - oldestAge);
    }
}
