using Osprey.Runtime;
using Osprey.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Training.Distillation;

/// <summary>
/// Knowledge distillation (<c>distill_model=</c>, <c>dis=</c>) as Ultralytics' PR #24894, attached through the trainer's
/// lifecycle: on <see cref="ModelBuilt"/> it loads the frozen <see cref="Teacher"/>, builds the <see cref="Projector"/>
/// (rank 0's initial weights on every rank) and adds itself to the run's loss (<see cref="ILossTerm"/>): each micro-step the
/// teacher runs on the same images without gradients, and <c>dis_loss</c> (<see cref="DistillationLoss"/>) joins the
/// detection loss, times the rank batch as the other items, normalised over the global batch. The projector trains in
/// the optimiser's groups with the student and is saved only in last.ckpt (for resume); the weights files hold the student.
/// Without <c>distill_model</c> it does nothing.
/// </summary>
public sealed class Distiller : ITrainingCallback, ILossTerm
{
    DetectionModel? _teacher;
    Projector? _projector;
    double _gain;
    Func<Tensor, Tensor>? _globalSum;

    /// <inheritdoc/>
    public bool EveryRank => true;

    /// <inheritdoc/>
    public string Name => "dis_loss";

    /// <inheritdoc/>
    public nn.Module Trainable => _projector ?? throw new InvalidOperationException("distillation is not set up");

    /// <summary>The teacher (null before set-up or without distill_model).</summary>
    public DetectionModel? TeacherModel => _teacher;

    /// <inheritdoc/>
    public void On(TrainingEvent e, TrainingRun run)
    {
        switch (e)
        {
            case ModelBuilt when run.Args.DistillModel is { } path:
                Attach(run, path);
                break;
            case TrainingFinished:
                Release();
                break;
        }
    }

    void Attach(TrainingRun run, string path)
    {
        Release();
        _teacher = Teacher.Load(path, run.Model, run.Data.Names, run.Device, run.Precision.Policy);
        _projector = new Projector(Teacher.HeadInputChannels(run.Model), Teacher.HeadInputChannels(_teacher)) { Policy = run.Precision.Policy };
        _projector.to(run.Device);
        run.Parallel.BroadcastModule(_projector);                         // every rank starts from rank 0's projector
        _gain = run.Args.Dis;
        _globalSum = run.Parallel.SumOverRanks;
        run.AddLossTerm(this);
    }

    /// <inheritdoc/>
    public LossTermResult Compute(Tensor images, IReadOnlyList<Tensor> headInputs)
    {
        if (_teacher is null || _projector is null) throw new InvalidOperationException("distillation is not set up");
        using var scope = NewDisposeScope();
        Tensor[] maps, features;
        using (no_grad()) (maps, features) = _teacher.ForwardWithHeadInputs(images);
        var scores = DistillationLoss.TeacherScores(maps, _teacher.Head.Levels, _teacher.RegMax);
        var item = DistillationLoss.Compute(_projector.call(headInputs), features, scores, _gain, _globalSum);
        var total = item.mul(Scalars.Int(images.shape[0]));                // as the detection loss: item · rank batch
        return new LossTermResult(total.MoveToOuterDisposeScope(), item.detach().MoveToOuterDisposeScope());
    }

    void Release()
    {
        _teacher?.Dispose();
        _projector?.Dispose();
        (_teacher, _projector) = (null, null);
    }
}
