using Osprey.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Osprey.Training.Distillation;

/// <summary>
/// Maps the student's head inputs to the teacher's channels, one branch per level as Ultralytics' distillation projector:
/// 1×1 conv (student → teacher channels, with bias), ReLU, 1×1 conv (teacher → teacher channels, with bias), PyTorch's
/// default Conv2d initialisation. It trains with the student and is never part of the saved weights.
/// </summary>
public sealed class Projector : nn.Module<IReadOnlyList<Tensor>, Tensor[]>
{
    readonly ModuleList<ProjectorLevel> levels = new();

    /// <param name="student">The student's head input channels per level.</param>
    /// <param name="teacher">The teacher's, per level.</param>
    public Projector(IReadOnlyList<long> student, IReadOnlyList<long> teacher) : base(nameof(Projector))
    {
        if (student.Count != teacher.Count) throw new ArgumentException($"{student.Count} student levels, {teacher.Count} teacher levels");
        for (int i = 0; i < student.Count; i++) levels.Add(new ProjectorLevel(student[i], teacher[i]));
        RegisterComponents();
    }

    /// <summary>How the convolutions compute (the run's cast policy).</summary>
    public CastPolicy Policy { get; set; } = CastPolicy.Float32;

    /// <summary>Each level projected, (b, c_teacher, h, w) in float32.</summary>
    public override Tensor[] forward(IReadOnlyList<Tensor> features) =>
        features.Select((x, i) => levels[i].Project(x, Policy)).ToArray();
}

/// <summary>One level of the <see cref="Projector"/>: conv, ReLU, conv.</summary>
public sealed class ProjectorLevel : nn.Module
{
    readonly Conv2d cv1, cv2;

    internal ProjectorLevel(long inChannels, long outChannels) : base(nameof(ProjectorLevel))
    {
        cv1 = nn.Conv2d(inChannels, outChannels, 1);
        cv2 = nn.Conv2d(outChannels, outChannels, 1);
        RegisterComponents();
    }

    internal Tensor Project(Tensor x, CastPolicy policy)
    {
        using var scope = NewDisposeScope();
        var hidden = nn.functional.relu(policy.Conv(cv1, x));
        var projected = policy.Conv(cv2, hidden);
        return projected.to(ScalarType.Float32).MoveToOuterDisposeScope();
    }
}
