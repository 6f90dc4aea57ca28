using System.Diagnostics;

namespace Osprey.Serving;

/// <summary>
/// A stream's recent pace: results per second and mean end-to-end latency (frame read → result sent) over the results
/// of the last <see cref="Window"/>. Thread-safe.
/// </summary>
public sealed class StreamStats
{
    /// <summary>How far back fps and latency look (3 s).</summary>
    public static readonly TimeSpan Window = TimeSpan.FromSeconds(3);

    const int Capacity = 512;   // results kept: 3 s at up to ~170 fps
    readonly (long At, double LatencyMs)[] ring = new (long, double)[Capacity];
    readonly object gate = new();
    int next, count;
    long started;   // the first result's time

    /// <summary>Records a result sent at <paramref name="at"/> (<see cref="Stopwatch.GetTimestamp"/>) for a frame read <paramref name="latency"/> before.</summary>
    public void Record(long at, TimeSpan latency)
    {
        lock (gate)
        {
            if (count == 0) started = at;
            ring[next] = (at, latency.TotalMilliseconds);
            next = (next + 1) % Capacity;
            count = Math.Min(count + 1, Capacity);
        }
    }

    /// <summary>Results per second and their mean latency in ms over the window before <paramref name="now"/>; (0, null) without results in it.</summary>
    public (double Fps, double? LatencyMs) Measure(long now)
    {
        lock (gate)
        {
            int n = 0;
            double latency = 0;
            for (int i = 0; i < count; i++)
            {
                var (at, ms) = ring[(next - 1 - i + Capacity) % Capacity];   // newest first
                if (Stopwatch.GetElapsedTime(at, now) > Window) break;
                latency += ms;
                n++;
            }
            if (n == 0) return (0, null);
            // the results in the window over the window (or the time since the first result, when shorter): a stream that
            // stops sending slows down to 0 over the window
            double seconds = Math.Min(Window.TotalSeconds, Stopwatch.GetElapsedTime(started, now).TotalSeconds);
            double fps = n > 1 && seconds > 0 ? n / seconds : 0;
            return (fps, latency / n);
        }
    }
}
