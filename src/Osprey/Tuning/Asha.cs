namespace Osprey.Tuning;

/// <summary>What <see cref="Asha"/> tells a trial after a result.</summary>
public enum AshaDecision
{
    /// <summary>Train on.</summary>
    Continue,
    /// <summary>Stop: below its rung's cutoff, or at <see cref="Asha.MaxT"/> (done).</summary>
    Stop,
}

/// <summary>
/// Asynchronous successive halving with Ray Tune's semantics (<c>AsyncHyperBandScheduler</c>, one bracket,
/// <c>mode="max"</c>, <c>stop_last_trials=True</c>), with epochs as the time attribute, as Ultralytics'
/// <c>model.tune(use_ray=True)</c> sets it up (<c>max_t</c> = epochs, <c>grace_period</c>, <c>reduction_factor=3</c>).
/// Rungs sit at <c>grace · rf^k ≤ max_t</c>. A result at epoch t is judged at the highest rung t has reached where the
/// trial is not recorded yet: the cutoff is the <c>(1 − 1/rf)</c> percentile (numpy's linear interpolation, NaN ignored)
/// of the values recorded there before it; the trial stops when its value is below the cutoff (a rung with nothing
/// recorded lets it through); either way its value is recorded there. A result at <c>t ≥ max_t</c> stops the trial (it is
/// done) without being recorded. Pure and deterministic: decisions depend only on the order of the calls.
/// </summary>
public sealed class Asha
{
    readonly SortedDictionary<int, Dictionary<int, double>> _recorded = new();

    /// <param name="gracePeriod">The first rung (epochs); 1 ≤ grace ≤ max_t.</param>
    /// <param name="maxT">The epochs of a full trial.</param>
    /// <param name="reductionFactor">rf ≥ 2: rungs are rf times apart and the top 1/rf continue.</param>
    /// <param name="recorded">Rung values of an earlier run of the tuner (rung → trial → value), or null.</param>
    public Asha(int gracePeriod, int maxT, int reductionFactor = 3, IReadOnlyDictionary<int, Dictionary<int, double>>? recorded = null)
    {
        if (maxT < 1) throw new ArgumentOutOfRangeException(nameof(maxT), maxT, "max_t must be at least 1");
        if (gracePeriod < 1 || gracePeriod > maxT)
            throw new ArgumentOutOfRangeException(nameof(gracePeriod), gracePeriod, $"grace_period must be in [1, max_t={maxT}]");
        if (reductionFactor < 2) throw new ArgumentOutOfRangeException(nameof(reductionFactor), reductionFactor, "reduction factor must be at least 2");
        (GracePeriod, MaxT, ReductionFactor) = (gracePeriod, maxT, reductionFactor);
        for (long milestone = gracePeriod; milestone <= maxT; milestone *= reductionFactor)
            _recorded[(int)milestone] = recorded?.GetValueOrDefault((int)milestone) is { } saved ? new(saved) : new();
    }

    /// <summary>The first rung.</summary>
    public int GracePeriod { get; }

    /// <summary>The epochs of a full trial.</summary>
    public int MaxT { get; }

    /// <summary>rf.</summary>
    public int ReductionFactor { get; }

    /// <summary>The rungs (epochs), ascending; one at max_t is never used to judge (a trial there is done).</summary>
    public IReadOnlyList<int> Milestones => _recorded.Keys.ToArray();

    /// <summary>What each rung has recorded: rung → trial → value (for the tuner's state).</summary>
    public IReadOnlyDictionary<int, Dictionary<int, double>> Recorded =>
        _recorded.ToDictionary(r => r.Key, r => new Dictionary<int, double>(r.Value));

    /// <summary>The cutoff of a rung now: the (1 − 1/rf) percentile of its values, or null when it has none.</summary>
    public double? Cutoff(int milestone) =>
        _recorded.TryGetValue(milestone, out var values) && values.Count > 0
            ? Percentile(values.Values, (1 - 1.0 / ReductionFactor) * 100)
            : null;

    /// <summary>Ray's <c>on_trial_result</c>: the decision for <paramref name="trial"/> after its result
    /// <paramref name="value"/> at epoch <paramref name="epoch"/> (recorded at the rung judged).</summary>
    public AshaDecision OnResult(int trial, int epoch, double value) => OnResult(trial, epoch, value, out _);

    /// <summary>As <see cref="OnResult(int, int, double)"/>, also saying which rung judged (null: none) and its cutoff then.</summary>
    public AshaDecision OnResult(int trial, int epoch, double value, out (int Rung, double? Cutoff)? judgedAt)
    {
        judgedAt = null;
        return epoch >= MaxT ? AshaDecision.Stop : Judge(trial, epoch, value, out judgedAt);
    }

    /// <summary>Ray's <c>on_trial_complete</c>: a trial that ended (finished, or stopped) records its last result at the
    /// highest rung it reached and is not recorded at yet.</summary>
    public void OnComplete(int trial, int epoch, double value) => Judge(trial, epoch, value, out _);

    AshaDecision Judge(int trial, int epoch, double value, out (int Rung, double? Cutoff)? judgedAt)
    {
        judgedAt = null;
        foreach (var (milestone, recorded) in _recorded.Reverse())
        {
            if (epoch < milestone || recorded.ContainsKey(trial)) continue;
            double? cutoff = Cutoff(milestone);
            judgedAt = (milestone, cutoff);
            recorded[trial] = value;
            return cutoff is { } c && value < c ? AshaDecision.Stop : AshaDecision.Continue;
        }
        return AshaDecision.Continue;
    }

    /// <summary>
    /// numpy's <c>nanpercentile(values, q)</c> with its default linear method: NaN left out, virtual index
    /// <c>n·p + (1 − p) − 1</c> for p = q/100 (numpy's arithmetic order), and numpy's two-sided interpolation
    /// (from below for a fraction under 0.5, from above otherwise). NaN when every value is NaN.
    /// </summary>
    public static double Percentile(IEnumerable<double> values, double q)
    {
        var sorted = values.Where(v => !double.IsNaN(v)).Order().ToArray();
        int n = sorted.Length;
        if (n == 0) return double.NaN;
        double p = q / 100;
        double index = n * p + (1 + p * (1 - 1 - 1)) - 1;
        if (index < 0) return sorted[0];                  // numpy clips both neighbours to the ends
        if (index >= n - 1) return sorted[n - 1];
        int below = (int)Math.Floor(index);
        double fraction = index - below;
        double a = sorted[below], b = sorted[below + 1], difference = b - a;
        return fraction >= 0.5 ? b - difference * (1 - fraction) : a + difference * fraction;
    }
}
