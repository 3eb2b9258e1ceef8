"""Matrix subspace projection: N M^T = 0 with [M; N] invertible (orthogonal for orthonormal M), the terms by hand
on a tiny case, editing that sets M z' to the wanted attributes exactly and keeps N z."""

import torch

from aekit.nn.subspace import SubspaceProjection


def projection(k=2, d=5, seed=0):
    torch.manual_seed(seed)
    return SubspaceProjection(d, k)


def test_the_complement_is_orthonormal_and_orthogonal_to_m():
    part = projection()
    m, n = part.M.detach(), part.complement()
    assert n.shape == (3, 5)
    assert torch.allclose(n @ m.T, torch.zeros(3, 2), atol=1e-6)
    assert torch.allclose(n @ n.T, torch.eye(3), atol=1e-6)
    assert torch.linalg.matrix_rank(torch.cat([m, n])) == 5
    assert torch.allclose(n.T @ n, part.complement_projection().detach(), atol=1e-5)  # N^T N = I - M^+ M
    with torch.no_grad():  # orthonormal rows of M: U = [M; N] is orthogonal, as the paper takes it
        part.M.copy_(torch.linalg.qr(torch.randn(5, 2))[0].T)
    u = torch.cat([part.M.detach(), part.complement()])
    assert torch.allclose(u @ u.T, torch.eye(5), atol=1e-5)


def test_the_terms_by_hand_on_a_tiny_case():
    """M = [[1, 0, 0]], z = (2, 3, -1), y = 0.5: ||M z - y||^2 = 2.25, N z = (3, -1) up to a rotation, 10."""
    part = SubspaceProjection(3, 1)
    with torch.no_grad():
        part.M.copy_(torch.tensor([[1.0, 0.0, 0.0]]))
    terms = part(torch.tensor([[2.0, 3.0, -1.0]]), torch.tensor([[0.5]]))
    assert torch.allclose(terms["msp_attr"], torch.tensor([2.25]))
    assert torch.allclose(terms["msp_null"], torch.tensor([10.0]))
    with torch.no_grad():  # M = [[2, 0, 0]]: the same subspace, ||N z||^2 unchanged; the attribute 4 - 0.5
        part.M.copy_(torch.tensor([[2.0, 0.0, 0.0]]))
    terms = part(torch.tensor([[2.0, 3.0, -1.0]]), torch.tensor([[0.5]]))
    assert torch.allclose(terms["msp_attr"], torch.tensor([12.25])) and torch.allclose(terms["msp_null"],
                                                                                        torch.tensor([10.0]))
    assert set(part(torch.zeros(2, 3))) == {"msp_null"}  # no attributes: the complement's term only


def test_editing_sets_the_attributes_exactly_and_keeps_the_complement():
    part = projection(k=2, d=6, seed=3)
    z = torch.randn(4, 6)
    y = torch.tensor([[1.0, -2.0], [0.0, 0.0], [3.0, 0.5], [-1.0, 1.0]])
    edited = part.edit(z, y)
    n = part.complement()
    with torch.no_grad():
        assert torch.allclose(part.attributes(edited), y, atol=1e-5)
        assert torch.allclose(edited @ n.T, z @ n.T, atol=1e-5)
        pinv = torch.linalg.pinv(part.M)  # the same point: z + M^+ (y' - M z)
        assert torch.allclose(edited, z + (y - part.attributes(z)) @ pinv.T, atol=1e-5)


def test_the_gradient_of_the_complement_term_reaches_m():
    part = projection()
    part(torch.randn(8, 5))["msp_null"].sum().backward()
    assert part.M.grad is not None and part.M.grad.abs().sum() > 0
