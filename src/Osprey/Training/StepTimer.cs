using System.Diagnostics;
using System.Globalization;

namespace Osprey.Training;

/// <summary>The phases of a training step that <see cref="StepTimer"/> times, in the order they happen.</summary>
public enum StepPhase
{
    /// <summary>Blocked waiting for the next batch from the loader.</summary>
    DataWait,
    /// <summary>Moving the batch to the device and converting the images to float.</summary>
    Copy,
    /// <summary>The model's forward pass.</summary>
    Forward,
    /// <summary>The loss (assigner included; under data parallel with the all-reduce of its target-score sum) and reading
    /// its items back to the host.</summary>
    Loss,
    /// <summary>backward().</summary>
    Backward,
    /// <summary>Data parallel only: gradient all-reduce and the sum of the loss items over the ranks.</summary>
    AllReduce,
    /// <summary>Clipping, the optimiser step, zeroing the gradients, the EMA update.</summary>
    Optimizer,
    /// <summary>Everything else in the step: schedule, buffer broadcast, checkpoints, plots, events, freeing tensors.</summary>
    Other,
}

/// <summary>Receives the phase boundaries of a training step (<see cref="TrainStep"/>): each lap charges the time since the
/// previous one to <paramref name="phase"/>.</summary>
public interface IStepClock
{
    /// <summary>The step has just finished <paramref name="phase"/>.</summary>
    void Lap(StepPhase phase);
}

/// <summary>Per-step means of one epoch's phases (milliseconds), over <see cref="Steps"/> timed steps.</summary>
/// <param name="Epoch">1-based epoch, as results.csv.</param>
/// <param name="Steps">Steps the means are over (on CUDA with sampling, the synchronised steps only).</param>
/// <param name="Milliseconds">Mean milliseconds per step, indexed by <see cref="StepPhase"/>.</param>
/// <param name="Synchronized">True when the device was synchronised at each phase boundary of the timed steps (CUDA);
/// false for host-side times (the CPU, where they are exact, or CUDA with sampling off).</param>
public sealed record StepTimes(int Epoch, int Steps, IReadOnlyList<double> Milliseconds, bool Synchronized)
{
    /// <summary>Mean milliseconds of one phase.</summary>
    public double this[StepPhase phase] => Milliseconds[(int)phase];

    /// <summary>Mean milliseconds of a whole step (the phases partition it, so this is their sum).</summary>
    public double StepMilliseconds => Milliseconds.Sum();
}

/// <summary>
/// Splits each training step's wall time into <see cref="StepPhase"/>s, lap by lap: every <see cref="Lap"/> charges the
/// time since the previous lap to one phase, so the phases partition the step and add up to its wall time.
/// <see cref="Timed{T}"/> wraps the batch source: the time blocked in the loader is <see cref="StepPhase.DataWait"/>,
/// and whatever the step did after its last lap (up to asking for the next batch) is <see cref="StepPhase.Other"/>.
/// An item the consumer passes over without a lap of its own (a resumed run skipping batches) is not a step.
/// </summary>
/// <remarks>
/// CUDA runs asynchronously, so host times say little about where GPU time goes. With a <c>synchronize</c> callback the
/// timer synchronises the device at every phase boundary, but only on one step in <c>every</c> (and means are over those
/// steps only), so that the cost of the synchronisations stays small; <c>every = 0</c> never synchronises (host times).
/// On the CPU there is nothing to synchronise and every step is timed.
/// </remarks>
public sealed class StepTimer : IStepClock
{
    /// <summary>Environment variable: on CUDA, synchronise and time one step in N (default 10; 0 = never synchronise,
    /// host times of every step; 1 = every step).</summary>
    public const string SyncEveryVariable = "OSPREY_STEP_SYNC_EVERY";
    /// <summary>Default of <see cref="SyncEveryVariable"/>.</summary>
    public const int DefaultSyncEvery = 10;

    static readonly int PhaseCount = Enum.GetValues<StepPhase>().Length;
    readonly Action? _synchronize;
    readonly int _every;
    readonly Stopwatch _clock = new();
    readonly double[] _step = new double[PhaseCount];
    readonly double[] _sums = new double[PhaseCount];
    long _started;      // steps begun (sampling counter)
    int _timedSteps;    // steps committed to this epoch's sums
    bool _open, _sampled, _worked;

    /// <summary>A timer; <paramref name="synchronize"/> (e.g. <c>torch.cuda.synchronize</c>) runs at each phase boundary
    /// of one step in <paramref name="every"/>; null or <paramref name="every"/> 0: host times of every step.</summary>
    public StepTimer(Action? synchronize = null, int every = 1)
    {
        if (every < 0) throw new ArgumentOutOfRangeException(nameof(every), "must be 0 (never synchronise) or positive");
        _synchronize = every == 0 ? null : synchronize;
        _every = _synchronize is null ? 1 : every;
    }

    /// <summary>The timer for a device: synchronised sampling on CUDA (see <see cref="SyncEveryVariable"/>), plain on the CPU.</summary>
    public static StepTimer For(TorchSharp.torch.Device device)
    {
        if (device.type != TorchSharp.DeviceType.CUDA) return new StepTimer();
        string? text = Environment.GetEnvironmentVariable(SyncEveryVariable);
        int every = DefaultSyncEvery;
        if (!string.IsNullOrWhiteSpace(text) && (!int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out every) || every < 0))
            throw new ArgumentException($"{SyncEveryVariable}={text}: expected a whole number ≥ 0 (0: never synchronise)");
        return new StepTimer(() => TorchSharp.torch.cuda.synchronize(device), every);
    }

    /// <summary>True when the timed steps are synchronised with the device.</summary>
    public bool Synchronized => _synchronize is not null;

    /// <summary>
    /// The items of <paramref name="source"/>, each one a step: the wait for it is <see cref="StepPhase.DataWait"/>, and the
    /// rest of the previous step (after its last <see cref="Lap"/>) is <see cref="StepPhase.Other"/>.
    /// </summary>
    public IEnumerable<T> Timed<T>(IEnumerable<T> source)
    {
        using var items = source.GetEnumerator();
        while (true)
        {
            EndStep();
            BeginStep();
            if (!items.MoveNext()) break;
            Lap(StepPhase.DataWait);
            yield return items.Current;
        }
        _open = false; // the last "step" was only the loader saying it is done: not a step
    }

    /// <summary>Charges the time since the previous lap to <paramref name="phase"/>.</summary>
    public void Lap(StepPhase phase)
    {
        if (!_open) return;
        if (_sampled) _synchronize?.Invoke();
        _step[(int)phase] += _clock.Elapsed.TotalMilliseconds;
        _clock.Restart();
        _worked |= phase is not (StepPhase.DataWait or StepPhase.Other);
    }

    /// <summary>This epoch's per-step means so far, and starts a new epoch.</summary>
    public StepTimes TakeEpoch(int epoch)
    {
        EndStep();
        var means = _sums.Select(s => _timedSteps == 0 ? 0 : s / _timedSteps).ToArray();
        var times = new StepTimes(epoch, _timedSteps, means, Synchronized);
        Array.Clear(_sums);
        _timedSteps = 0;
        return times;
    }

    void BeginStep()
    {
        _sampled = _started++ % _every == 0;
        if (_sampled) _synchronize?.Invoke(); // the step starts with the device idle
        Array.Clear(_step);
        _open = true;
        _worked = false;
        _clock.Restart();
    }

    void EndStep()
    {
        if (!_open) return;
        Lap(StepPhase.Other);
        _open = false;
        if (!_sampled || !_worked) return; // a batch passed over (resumed mid-epoch) is no step
        for (int i = 0; i < PhaseCount; i++) _sums[i] += _step[i];
        _timedSteps++;
    }
}
