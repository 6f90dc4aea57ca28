namespace Osprey.Models;

/// <summary>
/// A block that computes under a <see cref="CastPolicy"/> (its convolutions cast inputs and weights to the policy's
/// compute type). <see cref="DetectionModel.UseCastPolicy"/> sets the policy of every module of the model that
/// implements this, so a new block opts in by implementing it, with no change to the model.
/// </summary>
public interface ICastPolicyAware
{
    /// <summary>How the block's own convolutions compute (<see cref="CastPolicy.Float32"/> = the plain forward).</summary>
    CastPolicy Policy { get; set; }
}
