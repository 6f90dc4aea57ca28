using System.Diagnostics;
using System.Globalization;

namespace Osprey.Training;

/// <summary>
/// Test hook for data-parallel failure handling: <c>OSPREY_FAULT_KILL=RANK:ITERATION:MARKER_FILE</c> makes rank RANK
/// SIGKILL itself when it reaches global iteration ITERATION, once: the marker file is created first and a marker that
/// already exists disarms the fault (so a relaunched job runs through).
/// </summary>
internal sealed class FaultInjection(long iteration, string marker)
{
    public static FaultInjection? FromEnvironment(int rank)
    {
        string? text = Environment.GetEnvironmentVariable(Trainer.FaultVariable);
        if (string.IsNullOrWhiteSpace(text)) return null;
        string[] parts = text.Split(':', 3);
        if (parts.Length != 3 || !int.TryParse(parts[0], CultureInfo.InvariantCulture, out int faultRank)
            || !long.TryParse(parts[1], CultureInfo.InvariantCulture, out long at))
            throw new ArgumentException($"{Trainer.FaultVariable}={text}: expected RANK:ITERATION:MARKER_FILE");
        return faultRank == rank ? new FaultInjection(at, parts[2]) : null;
    }

    /// <summary>Test hook (a rank lost for good): <c>OSPREY_FAULT_LOST=RANK:MARKER_FILE</c> makes rank RANK SIGKILL itself at
    /// start, on every launch, once the marker file exists (e.g. the one <see cref="Trainer.FaultVariable"/> creates).</summary>
    public const string LostVariable = "OSPREY_FAULT_LOST";

    /// <summary>Dies here (SIGKILL) when <see cref="LostVariable"/> names <paramref name="rank"/> and its marker exists.</summary>
    public static void LostAtStart(int rank)
    {
        string? text = Environment.GetEnvironmentVariable(LostVariable);
        if (string.IsNullOrWhiteSpace(text)) return;
        string[] parts = text.Split(':', 2);
        if (parts.Length != 2 || !int.TryParse(parts[0], CultureInfo.InvariantCulture, out int lost))
            throw new ArgumentException($"{LostVariable}={text}: expected RANK:MARKER_FILE");
        if (lost == rank && File.Exists(parts[1])) Process.GetCurrentProcess().Kill();
    }

    /// <summary>Test hook: <c>OSPREY_FAULT_DATA_DELAY_MS=N</c> makes the training loader sleep N ms per sample.</summary>
    public const string DataDelayVariable = "OSPREY_FAULT_DATA_DELAY_MS";

    /// <summary>The per-sample delay <see cref="DataDelayVariable"/> asks for (zero when unset).</summary>
    public static TimeSpan DataDelay()
    {
        string? text = Environment.GetEnvironmentVariable(DataDelayVariable);
        if (string.IsNullOrWhiteSpace(text)) return TimeSpan.Zero;
        return int.TryParse(text, CultureInfo.InvariantCulture, out int ms) && ms >= 0
            ? TimeSpan.FromMilliseconds(ms)
            : throw new ArgumentException($"{DataDelayVariable}={text}: expected milliseconds ≥ 0");
    }

    public void At(long current)
    {
        if (current != iteration || File.Exists(marker)) return;
        File.WriteAllText(marker, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture));
        Process.GetCurrentProcess().Kill(); // SIGKILL: no cleanup, as a crashed node
    }
}
