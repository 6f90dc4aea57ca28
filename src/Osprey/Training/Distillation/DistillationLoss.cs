using Osprey.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Training.Distillation;

/// <summary>
/// Ultralytics' feature distillation loss (PR #24894, <c>DistillationModel.loss</c> / <c>loss_sl2</c>): per level of the
/// head's inputs, the squared difference of the projected student feature and the teacher feature, weighted at each
/// location by the teacher's confidence there (the sigmoid of its class logits, the largest over the classes), summed, and
/// divided by (Σ confidence · channels + 1e-9); the levels are summed and multiplied by <c>dis</c>. Computed in float32.
/// </summary>
public static class DistillationLoss
{
    /// <summary>Ultralytics' epsilon of the normaliser.</summary>
    public const double Epsilon = 1e-9;

    /// <summary>
    /// The teacher's confidence per location, one (b, 1, h·w) tensor per level: from its head's raw maps (each (b, 4·reg_max
    /// + nc, h, w)) the class logits; an end-to-end head's two branches (its maps are one-to-many then one-to-one) are
    /// averaged as logits first; then sigmoid and the maximum over the classes.
    /// </summary>
    /// <param name="maps">The teacher's head maps (<see cref="Models.DetectionModel.ForwardFeatures"/>).</param>
    /// <param name="levels">Levels of the head (3).</param>
    /// <param name="regMax">The head's DFL bins.</param>
    public static Tensor[] TeacherScores(IReadOnlyList<Tensor> maps, int levels, int regMax)
    {
        if (maps.Count != levels && maps.Count != 2 * levels)
            throw new ArgumentException($"{maps.Count} head maps for {levels} levels", nameof(maps));
        var scores = new Tensor[levels];
        for (int i = 0; i < levels; i++)
        {
            using var scope = NewDisposeScope();
            long classes = maps[i].shape[1] - 4L * regMax;
            var logits = maps[i].narrow(1, 4L * regMax, classes).to(ScalarType.Float32);            // (b, nc, h, w)
            if (maps.Count == 2 * levels) logits = logits.Plus(maps[levels + i].narrow(1, 4L * regMax, classes).to(ScalarType.Float32)).div(Scalars.Of(2));
            var (best, _) = logits.flatten(2).sigmoid().max(1, keepdim: true);                      // (b, 1, h·w)
            scores[i] = best.MoveToOuterDisposeScope();
        }
        return scores;
    }

    /// <summary>
    /// The loss: Σ over levels of Σ (student − teacher)² · score / (S · c + 1e-9), times <paramref name="gain"/> (a scalar).
    /// </summary>
    /// <param name="student">Projected student features per level, (b, c, h, w) with the teacher's c.</param>
    /// <param name="teacher">Teacher features per level, (b, c, h, w).</param>
    /// <param name="scores">The teacher's confidence per level, (b, 1, h·w) (<see cref="TeacherScores"/>).</param>
    /// <param name="gain">Ultralytics' <c>dis</c>.</param>
    /// <param name="globalSum">Data parallel: the sum over the ranks of the levels' score sums S (a (levels) tensor), so that
    /// the ranks' losses add up to the loss of the global batch; null or the identity in one process.</param>
    public static Tensor Compute(IReadOnlyList<Tensor> student, IReadOnlyList<Tensor> teacher, IReadOnlyList<Tensor> scores,
        double gain, Func<Tensor, Tensor>? globalSum = null)
    {
        using var scope = NewDisposeScope();
        var localSums = stack(scores.Select(s => s.sum()).ToArray());                                 // (levels)
        var sums = (globalSum?.Invoke(localSums.detach()) ?? localSums).detach();
        Tensor total = zeros(Array.Empty<long>(), dtype: ScalarType.Float32, device: scores[0].device);
        for (int i = 0; i < student.Count; i++)
        {
            long b = student[i].shape[0], c = student[i].shape[1], hw = student[i].shape.Skip(2).Aggregate(1L, (x, y) => x * y); // b may be 0
            var s = student[i].to(ScalarType.Float32).reshape(b, c, hw);
            var t = teacher[i].to(ScalarType.Float32).reshape(b, c, hw);
            var weighted = s.Minus(t).square().mul(scores[i]).sum();
            total = total.Plus(weighted / sums[i].mul(Scalars.Of(c)).add(Scalars.Of(Epsilon)));
        }
        return total.mul(Scalars.Of(gain)).MoveToOuterDisposeScope();   // process-lifetime Scalars: see Scalars
    }
}
