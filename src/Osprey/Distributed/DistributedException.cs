namespace Osprey.Distributed;

/// <summary>
/// A collective, rendezvous or launch failure. <see cref="Exception.Message"/> starts with
/// <c>rank R on host H: </c> so that a log line from any rank says who saw the problem.
/// </summary>
public sealed class DistributedException : Exception
{
    /// <summary>Creates the exception for <paramref name="rank"/> on <paramref name="host"/>.</summary>
    public DistributedException(int rank, string host, string message, Exception? inner = null)
        : base($"rank {rank} on host {host}: {message}", inner)
    {
        Rank = rank;
        Host = host;
    }

    /// <summary>Creates an exception that belongs to no rank (configuration errors before a group exists).</summary>
    public DistributedException(string message, Exception? inner = null) : base(message, inner)
    {
        Rank = -1;
        Host = Environment.MachineName;
    }

    /// <summary>The rank that raised the error, or -1 when it happened before ranks were known.</summary>
    public int Rank { get; }

    /// <summary>The host name of the process that raised the error.</summary>
    public string Host { get; }
}
