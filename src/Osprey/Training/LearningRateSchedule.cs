namespace Osprey.Training;

/// <summary>The learning rate and momentum of each parameter group at one optimiser iteration.</summary>
/// <param name="LearningRates">Per group, in group order (pg0 biases, pg1 decayed weights, pg2 BatchNorm weights).</param>
/// <param name="Momentum">SGD momentum / Adam β1 for every group.</param>
/// <param name="Accumulate">Micro-batches per optimiser step at this iteration.</param>
public sealed record ScheduleValues(IReadOnlyList<double> LearningRates, double Momentum, int Accumulate);

/// <summary>
/// Ultralytics' schedule: per-epoch factor <c>lf(epoch)</c> (linear to lrf, or one-cycle cosine with
/// <c>cos_lr</c>), and during the first <c>nw = max(round(warmup_epochs·nb), 100)</c> iterations a linear warmup
/// (bias lr from warmup_bias_lr down, other lrs from 0 up, momentum from warmup_momentum up, accumulation from 1 up
/// to nbs/batch).
/// </summary>
public sealed class LearningRateSchedule(
    double lr0, double lrf, int epochs, bool cosine, double warmupEpochs, double warmupBiasLr,
    double warmupMomentum, double momentum, int nominalBatch, int batch, int groups = 3)
{
    /// <summary>Per-epoch lr factor: linear <c>max(1 − e/E, 0)·(1 − lrf) + lrf</c> or one-cycle cosine.</summary>
    public double Factor(int epoch) => cosine
        ? (1 - Math.Cos(epoch * Math.PI / epochs)) / 2 * (lrf - 1) + 1
        : Math.Max(1 - (double)epoch / epochs, 0) * (1.0 - lrf) + lrf;

    /// <summary>Warmup length in iterations for <paramref name="batchesPerEpoch"/> (−1: no warmup).</summary>
    public int WarmupIterations(int batchesPerEpoch) =>
        warmupEpochs > 0 ? Math.Max((int)Math.Round(warmupEpochs * batchesPerEpoch, MidpointRounding.ToEven), 100) : -1;

    /// <summary>Micro-batches per optimiser step after warmup: <c>max(round(nbs / batch), 1)</c>.</summary>
    public int Accumulate => AccumulateFor(nominalBatch, batch);

    /// <summary>Ultralytics' accumulation to the nominal batch: <c>max(round(nbs / batch), 1)</c>.</summary>
    public static int AccumulateFor(int nbs, int batch) => Math.Max((int)Math.Round((double)nbs / batch, MidpointRounding.ToEven), 1);

    /// <summary>Values at global iteration <paramref name="iteration"/> (= i + nb·epoch) of <paramref name="epoch"/>.</summary>
    public ScheduleValues At(int epoch, int iteration, int batchesPerEpoch)
    {
        double lr = lr0 * Factor(epoch);
        int warmup = WarmupIterations(batchesPerEpoch);
        if (iteration > warmup)
            return new(Enumerable.Repeat(lr, groups).ToArray(), momentum, Accumulate);
        double t = (double)iteration / warmup; // np.interp(ni, [0, nw], [a, b]) = a + t·(b − a)
        var lrs = new double[groups];
        for (int g = 0; g < groups; g++) lrs[g] = Lerp(g == 0 ? warmupBiasLr : 0.0, lr, t);
        int accumulate = Math.Max(1, (int)Math.Round(Lerp(1, (double)nominalBatch / batch, t), MidpointRounding.ToEven));
        return new(lrs, Lerp(warmupMomentum, momentum, t), accumulate);
    }

    static double Lerp(double from, double to, double t) => from + t * (to - from);
}
