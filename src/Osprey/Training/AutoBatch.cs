using System.Globalization;
using Osprey.Config;
using Osprey.Distributed;
using static TorchSharp.torch;

namespace Osprey.Training;

/// <summary>AutoBatch's choice and what it logged (Ultralytics' messages).</summary>
public sealed record AutoBatchResult(int Batch, IReadOnlyList<string> Log);

/// <summary>
/// Ultralytics' AutoBatch (<c>ultralytics/utils/autobatch.py</c>, linear fit as restored in April 2025): <c>batch=-1</c> uses
/// 60 % of the device's memory, <c>0 &lt; batch &lt; 1</c> that fraction. Memory is profiled for batch sizes 1, 2, 4, 8, 16
/// (… 32, 64 on a device of 16 GiB or more); a line fitted to memory against batch is solved for the fraction of the free
/// memory; a failed size caps the choice below it; a choice outside 1…1024 or any error falls back to the default 16.
/// On the CPU it warns and uses 16. Under data parallel each rank measures its own device and the ranks take the
/// smallest choice: the global batch is that × world size.
/// </summary>
public static class AutoBatch
{
    /// <summary>Ultralytics' fraction of the memory for <c>batch=-1</c>.</summary>
    public const double DefaultFraction = 0.60;
    /// <summary>Ultralytics' default batch (default.yaml), the fallback.</summary>
    public const int DefaultBatch = 16;
    const string Prefix = "AutoBatch: ";
    const double GiB = 1 << 30;

    /// <summary>True when <paramref name="batch"/> asks for AutoBatch (anything below 1, as Ultralytics).</summary>
    public static bool IsRequested(double batch) => batch < 1;

    /// <summary>The memory fraction <paramref name="batch"/> asks for: itself when 0 &lt; batch &lt; 1, else 0.6.</summary>
    public static double Fraction(double batch) => batch is > 0 and < 1 ? batch : DefaultFraction;

    /// <summary>
    /// The run's global batch: <c>batch</c> itself when it is 1 or more (a whole number), else AutoBatch on this rank's
    /// device (<paramref name="probe"/> makes the memory probe; it is only called on CUDA) agreed over the ranks of
    /// <paramref name="parallel"/>. <paramref name="log"/> gets Ultralytics' AutoBatch lines.
    /// </summary>
    public static int Resolve(double batch, int imageSize, Device device, DataParallel parallel, Func<IDeviceMemoryProbe> probe,
        Action<string>? log = null)
    {
        if (!IsRequested(batch))
        {
            if (batch != Math.Floor(batch) || batch > int.MaxValue)
                throw new ArgumentsException($"batch={batch.ToString(CultureInfo.InvariantCulture)}: use a whole number, -1 for AutoBatch, or a memory fraction 0 < batch < 1");
            return (int)batch;
        }
        double fraction = Fraction(batch);
        if (device.type != TorchSharp.DeviceType.CUDA)
        {
            // Ultralytics: intended for CUDA, the default batch (the global one: the CPU path of old).
            log?.Invoke(Computing(imageSize, fraction));
            log?.Invoke($"{Prefix}intended for CUDA devices, using default batch-size {DefaultBatch}");
            return DefaultBatch;
        }
        AutoBatchResult mine;
        var memoryProbe = probe();
        try
        {
            mine = Decide(memoryProbe, imageSize, fraction);
        }
        finally
        {
            (memoryProbe as IDisposable)?.Dispose();
        }
        foreach (string line in mine.Log) log?.Invoke(line);
        int perRank = parallel.SmallestOverRanks(mine.Batch, device);
        if (parallel.World > 1)
            log?.Invoke($"{Prefix}{parallel.World} ranks agree on batch-size {perRank} per rank (the smallest), global batch {perRank * parallel.World}");
        return perRank * parallel.World;
    }

    /// <summary>
    /// Ultralytics' decision for one device: profile, fit, solve, check. Every failure falls back to
    /// <paramref name="defaultBatch"/> with Ultralytics' warning.
    /// </summary>
    public static AutoBatchResult Decide(IDeviceMemoryProbe probe, int imageSize, double fraction = DefaultFraction,
        int defaultBatch = DefaultBatch)
    {
        var log = new List<string> { Computing(imageSize, fraction) };
        try
        {
            DeviceMemory memory = probe.Memory();
            double t = memory.Total / GiB, r = memory.Reserved / GiB, a = memory.Allocated / GiB;
            double f = t - (r + a); // Ultralytics' "free" (GiB)
            string d = probe.DeviceName;
            log.Add($"{Prefix}{d} ({memory.Name}) {F2(t)}G total, {F2(r)}G reserved, {F2(a)}G allocated, {F2(f)}G free");

            int[] sizes = t < 16 ? new[] { 1, 2, 4, 8, 16 } : new[] { 1, 2, 4, 8, 16, 32, 64 };
            var results = new double?[sizes.Length];
            for (int i = 0; i < sizes.Length; i++)
            {
                results[i] = probe.Profile(sizes[i]);
                log.Add(results[i] is double gb
                    ? $"{Prefix}batch {sizes[i],3}: {gb.ToString("0.000", CultureInfo.InvariantCulture)}G"
                    : $"{Prefix}batch {sizes[i],3}: failed");
            }

            // Points of the fit: valid, below the device's size, and memory increasing over the previous valid size.
            var xs = new List<double>();
            var ys = new List<double>();
            for (int i = 0; i < sizes.Length; i++)
                if (results[i] is double y && y > 0 && y < t && (i == 0 || results[i - 1] is not double previous || y > previous))
                {
                    xs.Add(sizes[i]);
                    ys.Add(y);
                }
            var (slope, intercept) = FitLine(xs, ys);
            double solved = (Math.Round(f * fraction, MidpointRounding.ToEven) - intercept) / slope;
            if (!double.IsFinite(solved))
                throw new InvalidOperationException($"cannot convert float {(double.IsNaN(solved) ? "NaN" : "infinity")} to integer");
            long b = (long)Math.Truncate(solved);
            int firstFailure = Array.FindIndex(results, y => y is null);
            if (firstFailure >= 0 && b >= sizes[firstFailure])
                b = sizes[Math.Max(firstFailure - 1, 0)]; // the last size before the failure
            if (b < 1 || b > 1024)
            {
                log.Add($"{Prefix}batch={b} outside safe range, using default batch-size {defaultBatch}.");
                b = defaultBatch;
            }
            double predicted = (slope * b + intercept + r + a) / t;
            log.Add($"{Prefix}Using batch-size {b} for {d} {F2(t * predicted)}G/{F2(t)}G ({Math.Round(predicted * 100, MidpointRounding.ToEven).ToString("0", CultureInfo.InvariantCulture)}%) ✅");
            return new AutoBatchResult((int)b, log);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            log.Add($"{Prefix}error detected: {e.Message},  using default batch-size {defaultBatch}.");
            return new AutoBatchResult(defaultBatch, log);
        }
    }

    /// <summary>
    /// numpy's <c>polyfit(x, y, 1)</c>: least squares (slope, intercept); one point gives numpy's minimum-norm answer of
    /// its column-scaled system (slope y/2x, intercept y/2); no point is an error, as there.
    /// </summary>
    public static (double Slope, double Intercept) FitLine(IReadOnlyList<double> x, IReadOnlyList<double> y)
    {
        if (x.Count == 0) throw new InvalidOperationException("expected non-empty vector for x");
        if (x.Count == 1) return (y[0] / (2 * x[0]), y[0] / 2);
        double mx = x.Average(), my = y.Average();
        double sxy = 0, sxx = 0;
        for (int i = 0; i < x.Count; i++)
        {
            sxy += (x[i] - mx) * (y[i] - my);
            sxx += (x[i] - mx) * (x[i] - mx);
        }
        double slope = sxy / sxx;
        return (slope, my - slope * mx);
    }

    static string Computing(int imageSize, double fraction) =>
        $"{Prefix}Computing optimal batch size for imgsz={imageSize} at {PythonFloat(fraction * 100)}% CUDA memory utilization.";

    // Python's f"{x:.2f}" (half-even) and str(float) (shortest round trip, ".0" on whole numbers), as in Ultralytics' messages.
    static string F2(double value) => Math.Round(value, 2, MidpointRounding.ToEven).ToString("0.00", CultureInfo.InvariantCulture);

    static string PythonFloat(double value)
    {
        string text = value.ToString("R", CultureInfo.InvariantCulture);
        return text.Contains('.') || text.Contains('E') ? text : text + ".0";
    }
}
