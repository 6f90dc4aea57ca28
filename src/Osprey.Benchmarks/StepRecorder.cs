using System.Diagnostics;
using Osprey.Distributed;
using static TorchSharp.torch;

namespace Osprey.Benchmarks;

/// <summary>
/// <see cref="StepBenchmark"/>'s clock: the timestamps of one <see cref="TrainStep"/>'s phase boundaries (device
/// synchronised at each, on CUDA) and of the loss normaliser's all-reduce, as a <see cref="StepBreakdown"/> record.
/// </summary>
internal sealed class StepRecorder(Device device) : IStepClock
{
    readonly bool _cuda = device.type == TorchSharp.DeviceType.CUDA;
    long _start, _buffers, _loss, _items, _backward, _sync, _end, _normaliserEnter, _normaliserTicks;
    int _allReduces;

    /// <summary>Seconds of the last whole step.</summary>
    public double StepSeconds => Stopwatch.GetElapsedTime(_start, _end).TotalSeconds;

    /// <summary>The loss normaliser's sum over the ranks, timed.</summary>
    public Func<Tensor, Tensor> Normaliser(DataParallel parallel) => local =>
    {
        long enter = Stopwatch.GetTimestamp();
        var global = parallel.SumOverRanks(local);
        _normaliserEnter = enter;
        _normaliserTicks += Stopwatch.GetTimestamp() - enter;
        return global;
    };

    /// <summary>A step starts (the device idle).</summary>
    public void Begin()
    {
        Synchronize();
        _normaliserEnter = _normaliserTicks = 0;
        _allReduces = 0;
        _start = Stopwatch.GetTimestamp();
    }

    /// <inheritdoc/>
    public void Lap(StepPhase phase)
    {
        Synchronize();
        long now = Stopwatch.GetTimestamp();
        switch (phase)
        {
            case StepPhase.Other: _buffers = now; break;
            case StepPhase.Loss: _loss = _items = now; break;
            case StepPhase.AllReduce when _allReduces++ == 0: _items = now; break;   // the loss items
            case StepPhase.AllReduce: _sync = now; break;                          // the gradients
            case StepPhase.Backward: _backward = _sync = now; break;
            case StepPhase.Optimizer: _end = now; break;
        }
    }

    /// <summary>Writes the step's record into row <paramref name="row"/> (<see cref="StepBreakdown"/>'s columns).</summary>
    public void Record(double[,] records, int row, GradientSyncTimes? sync)
    {
        var gradients = sync ?? new GradientSyncTimes(0, _backward, _backward);
        double[] values =
        {
            _start, _buffers, _buffers, _normaliserTicks > 0 ? _normaliserEnter : _buffers, (double)_normaliserTicks / Stopwatch.Frequency,
            _loss, _items, _backward, gradients.ReduceStart, gradients.ReduceEnd, _sync, _end,
        };
        for (int c = 0; c < values.Length; c++) records[row, c] = values[c];
    }

    void Synchronize()
    {
        if (_cuda) TorchSharp.torch.cuda.synchronize(device);
    }
}
