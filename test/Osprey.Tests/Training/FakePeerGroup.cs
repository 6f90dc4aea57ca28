using Osprey.Distributed;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Tests.Training;

/// <summary>
/// One rank of a fake world of two, in one process: an all-reduce adds the peer's tensor, all <paramref name="peer"/>, to
/// every element (Average then halves it); a broadcast from the other rank writes <paramref name="rootValue"/> into the
/// tensor, one from this rank leaves it as it is. Counts the collectives it served.
/// </summary>
internal sealed class FakePeerGroup(int rank, float peer, float rootValue = 0) : IProcessGroup
{
    public int AllReduces, Broadcasts;
    public int Rank => rank;
    public int WorldSize => 2;
    public bool Communicates => true;
    public string Backend => "fake";
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(1);

    public void AllReduce(Tensor tensor, ReduceOp op = ReduceOp.Sum)
    {
        AllReduces++;
        using var other = tensor.dtype == ScalarType.Float32 ? torch.tensor(peer) : torch.tensor((double)peer, dtype: tensor.dtype);
        tensor.add_(other);
        if (op == ReduceOp.Average) tensor.div_(2);
    }

    public void Broadcast(Tensor tensor, int root = 0)
    {
        Broadcasts++;
        if (root != rank) tensor.fill_(rootValue);
    }

    public Tensor AllGather(Tensor input) => cat(new[] { input, input });
    public void Barrier() { }
    public void Abort(int exitCode = 1) => throw new InvalidOperationException("abort");
    public void Dispose() { }
}
