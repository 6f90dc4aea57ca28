namespace Osprey.Distributed;

/// <summary>Settings shared by the process-group backends.</summary>
public sealed record ProcessGroupOptions
{
    /// <summary>Default collective timeout: long enough for a slow first step, short enough to notice a hang.</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromMinutes(5);

    /// <summary>How long a collective or the rendezvous may wait for the other ranks.</summary>
    public TimeSpan Timeout { get; init; } = DefaultTimeout;

    /// <summary>
    /// Called by the NCCL watchdog thread (not the caller's thread) after it aborted the communicator because of an
    /// asynchronous error or a timeout; the message names the rank and host. Default: <see cref="Environment.FailFast(string)"/>,
    /// which exits the process non-zero, as torch's NCCL watchdog does, so that no rank hangs in CUDA work.
    /// </summary>
    public Action<string>? OnFatalError { get; init; }
}
