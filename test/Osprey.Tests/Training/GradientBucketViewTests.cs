using Osprey.Distributed;
using Osprey.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Osprey.Tests.Training;

/// <summary>
/// Gradients as views of the flat buckets, in one process: a fake rank 0 of two whose peer contributes a known value to
/// every element, so the average is (own + peer) / 2, computed here independently.
/// </summary>
public class GradientBucketViewTests
{
    static (nn.Module<Tensor, Tensor> Model, Tensor Input) Model()
    {
        torch.manual_seed(5);
        var model = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2));
        return (model, randn(5, 4));
    }

    // True when the gradients lie back to back in reverse registration order: views of one flat bucket.
    static bool InOneBucket(nn.Module model)
    {
        var parameters = model.parameters().ToArray();
        var grads = parameters.Select(p => p.grad!).ToArray();
        try
        {
            return Enumerable.Range(0, parameters.Length - 1).All(i =>
                TensorMemory.DataPointer(grads[i]) == TensorMemory.DataPointer(grads[i + 1]) + (nint)(parameters[i + 1].numel() * 4));
        }
        finally
        {
            foreach (var g in grads) g.Dispose();
        }
    }

    static float[] Grad(nn.Module model, int i)
    {
        using var g = model.parameters().ElementAt(i).grad!;
        return g.data<float>().ToArray();
    }

    [Fact]
    public void BackwardWritesIntoTheBucketsAndTheAverageIsTheCopyingPathsToTheBit()
    {
        float[][] averages = new float[2][];
        foreach (bool view in new[] { false, true })
        {
            var (model, x) = Model();
            var group = new FakePeerGroup(rank: 0, peer: 0.25f);
            using var ddp = new DataParallel(model, group, gradientAsBucketView: view);
            Assert.Equal(view, ddp.GradientAsBucketView);
            float[] own = Array.Empty<float>();
            for (int step = 0; step < 2; step++)                       // the second step re-attaches after zero_grad
            {
                ddp.BeginMicroStep(synchronize: true);
                model.call(x).square().sum().backward();
                own = model.parameters().SelectMany(p => { using var g = p.grad!; return g.data<float>().ToArray(); }).ToArray();
                ddp.AverageGradients();
                if (step == 0) foreach (var p in model.parameters()) p.grad = null;   // zero_grad(set_to_none)
            }
            Assert.Equal(2, group.AllReduces);                             // one bucket per step
            averages[view ? 1 : 0] = model.parameters().SelectMany(p => { using var g = p.grad!; return g.data<float>().ToArray(); }).ToArray();
            // (own + peer) / 2, element by element, in float32 as the group computes it
            Assert.Equal(own.Select(g => (g + 0.25f) / 2), averages[view ? 1 : 0]);
            Assert.Equal(view, InOneBucket(model));
        }
        Assert.Equal(averages[0].Select(BitConverter.SingleToInt32Bits), averages[1].Select(BitConverter.SingleToInt32Bits));
    }

    [Fact]
    public void AGradientReplacedOrMissingBeforeTheSyncIsCopiedInOrZeroedAndBecomesAViewAgain()
    {
        var (model, x) = Model();
        using var ddp = new DataParallel(model, new FakePeerGroup(rank: 0, peer: 1f));
        ddp.BeginMicroStep(synchronize: true);
        model.call(x).square().sum().backward();
        var parameters = model.parameters().ToArray();
        parameters[0].grad = full_like(parameters[0], 3f);              // replaced: not the bucket's view any more
        parameters[1].grad = null;                                      // missing: contributes zeros
        float[] kept = Grad(model, 2);
        ddp.AverageGradients();
        Assert.All(Grad(model, 0), g => Assert.Equal(2f, g));            // (3 + 1) / 2
        Assert.All(Grad(model, 1), g => Assert.Equal(0.5f, g));          // (0 + 1) / 2
        Assert.Equal(kept.Select(g => (g + 1f) / 2), Grad(model, 2));

        // every gradient is a view of the bucket again: the next backward without zero_grad accumulates into it
        Assert.True(InOneBucket(model), "the replaced and the missing gradient are views of the bucket again");
        float[] before = Grad(model, 0);
        model.call(x).square().sum().backward();
        ddp.BeginMicroStep(synchronize: false);                          // nothing missing: the views are left alone
        float[] after = Grad(model, 0);
        Assert.NotEqual(before, after);
        Assert.True(InOneBucket(model));
        ddp.AverageGradients();
        Assert.Equal(after.Select(g => (g + 1f) / 2), Grad(model, 0));
    }
}
